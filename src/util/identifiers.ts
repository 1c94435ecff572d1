/**
 * The rules for SQL identifiers that come from the config (tables, columns) and for attribute
 * names (object keys), shared by config validation (main thread) and the mapper (any thread).
 * Identifiers are refused at load time when they break a rule, and always quoted when used.
 * @module
 */

/**
 * The database kinds whose identifier limits are known.
 *
 * ```ts
 * const kind: IdentifierKind = 'pg';
 * ```
 */
export type IdentifierKind = 'pg' | 'mysql';

/**
 * The allowlist: ASCII letters, digits and `_`, not starting with a digit. No dots (a name is
 * never schema-qualified), no quotes, spaces, comment starters, control bytes or homoglyphs.
 *
 * ```ts
 * IDENTIFIER_PATTERN.test('pg_catalog.pg_authid'); // false
 * ```
 */
export const IDENTIFIER_PATTERN = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * Per kind: the longest identifier in bytes (PostgreSQL truncates past NAMEDATALEN - 1 = 63,
 * MySQL/MariaDB refuse past 64) and whether column names compare case-insensitively (MySQL does).
 *
 * ```ts
 * IDENTIFIER_LIMITS.pg.maxBytes; // 63
 * ```
 */
export const IDENTIFIER_LIMITS: Readonly<Record<IdentifierKind, { readonly maxBytes: number; readonly foldsCase: boolean }>> = Object.freeze({
  pg: Object.freeze({ maxBytes: 63, foldsCase: false }),
  mysql: Object.freeze({ maxBytes: 64, foldsCase: true }),
});

/**
 * Names that would reach an object's prototype machinery when used as keys.
 *
 * ```ts
 * FORBIDDEN_ATTRIBUTES.has('__proto__'); // true
 * ```
 */
export const FORBIDDEN_ATTRIBUTES: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype']);

/**
 * Longest attribute name accepted (attributes are object keys, not SQL, but stay sane).
 *
 * ```ts
 * attributeProblem('a'.repeat(MAX_ATTRIBUTE_LENGTH + 1)); // 'must be at most 128 characters'
 * ```
 */
export const MAX_ATTRIBUTE_LENGTH = 128;

/**
 * Why `name` is not a usable identifier for `kind`, or `undefined` when it is.
 *
 * ```ts
 * identifierProblem('users', 'pg');            // undefined
 * identifierProblem('pg_catalog.pg_authid', 'pg'); // 'must be letters, digits and _ …'
 * ```
 */
export function identifierProblem(name: string, kind: IdentifierKind): string | undefined {
  if (!IDENTIFIER_PATTERN.test(name)) return 'must be letters, digits and _ only (ASCII, no dots, quotes or spaces), not starting with a digit';
  const max = IDENTIFIER_LIMITS[kind].maxBytes;
  const bytes = Buffer.byteLength(name, 'utf8');
  if (bytes > max) return `is ${bytes} bytes long; ${kind === 'pg' ? 'PostgreSQL' : 'MySQL/MariaDB'} identifiers are at most ${max} bytes`;
  return undefined;
}

/**
 * Why `name` is not a usable attribute name, or `undefined` when it is.
 *
 * ```ts
 * attributeProblem('fullName');   // undefined
 * attributeProblem('__proto__');  // 'is reserved …'
 * ```
 */
export function attributeProblem(name: string): string | undefined {
  if (FORBIDDEN_ATTRIBUTES.has(name)) return 'is reserved (__proto__, constructor and prototype cannot be attributes)';
  if (!IDENTIFIER_PATTERN.test(name)) return 'must be letters, digits and _ only, not starting with a digit';
  if (name.length > MAX_ATTRIBUTE_LENGTH) return `must be at most ${MAX_ATTRIBUTE_LENGTH} characters`;
  return undefined;
}

/**
 * The name the server actually uses for `name`: cut to the byte limit (what PostgreSQL does
 * silently) and, where the server compares case-insensitively, lower-cased. Two columns with the
 * same folded name collide.
 *
 * ```ts
 * foldIdentifier('Name', 'mysql') === foldIdentifier('name', 'mysql'); // true
 * ```
 */
export function foldIdentifier(name: string, kind: IdentifierKind): string {
  const { maxBytes, foldsCase } = IDENTIFIER_LIMITS[kind];
  const cut = Buffer.from(name, 'utf8').subarray(0, maxBytes).toString('utf8');
  return foldsCase ? cut.toLowerCase() : cut;
}
