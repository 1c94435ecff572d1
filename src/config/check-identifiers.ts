/**
 * Load-time check of the identifiers a config puts into generated SQL (RELIABILITY.md S2): each
 * class's table and columns against its database's driver rules (allowlist pattern, byte length,
 * collisions after truncation and case folding), and its attribute names. Runs after the schema
 * check, before any connection is opened; `loadConfig` raises `IDENTIFIER_INVALID` for them.
 * @module
 */
import { attributeProblem, foldIdentifier, identifierProblem, type IdentifierKind } from '../util/identifiers.js';
import { show, type ConfigInput, type ConfigProblem } from './schema.js';

/**
 * The identifier problems of a schema-valid config; empty when all pass. Messages name the value
 * through `show`, which escapes control and invisible characters.
 *
 * ```ts
 * const problems = identifierProblems(validated);
 * if (problems.length > 0) throw Errors.identifierInvalid(problems.map((p) => p.message).join('\n'));
 * ```
 */
export function identifierProblems(cfg: ConfigInput): ConfigProblem[] {
  const out: ConfigProblem[] = [];
  for (const [name, c] of Object.entries(cfg.classes ?? {})) {
    const kind: IdentifierKind | undefined = cfg.databases[c.database]?.driver;
    if (kind === undefined) continue; // reported by the schema check
    const at = (...rest: (string | number)[]) => ['classes', name, ...rest];
    const tableWhy = identifierProblem(c.table, kind);
    if (tableWhy) out.push({ path: at('table'), message: `${tableWhy} (got ${show(c.table)})` });
    const pairs: [attr: string, column: string, path: (string | number)[]][] = Array.isArray(c.attributes)
      ? c.attributes.map((a, i) => [a, a, at('attributes', i)])
      : Object.entries(c.attributes).map(([a, col]) => [a, col, at('attributes', a)]);
    const folded = new Map<string, string>();
    for (const [attr, column, path] of pairs) {
      const attrWhy = attributeProblem(attr);
      if (attrWhy) {
        out.push({ path, message: `attribute name ${attrWhy} (got ${show(attr)})` });
        continue;
      }
      const colWhy = identifierProblem(column, kind);
      if (colWhy) {
        out.push({ path, message: `column ${colWhy} (got ${show(column)})` });
        continue;
      }
      const key = foldIdentifier(column, kind);
      const other = folded.get(key);
      if (other !== undefined && other !== column) {
        out.push({ path, message: `column ${show(column)} collides with column ${show(other)} on ${kind === 'pg' ? 'PostgreSQL' : 'MySQL/MariaDB'} (same name after truncation${kind === 'mysql' ? ' and case folding' : ''})` });
      } else {
        folded.set(key, column);
      }
    }
  }
  return out;
}
