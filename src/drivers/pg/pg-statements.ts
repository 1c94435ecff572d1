/**
 * Names of prepared statements on the broker's pg connections: one name per SQL text, the same
 * on every connection of the process, so a connection prepares a text once (issue 8: +28% on
 * point selects). Shared by the `pg.Client` path and the forwarding path (pg-forward.ts).
 * @module
 */

/** Most distinct statement texts given a name; past it, statements run unnamed (bounded server memory). */
const STATEMENT_NAMES_LIMIT = 1000;
const statementNames = new Map<string, string>();
let statementSeq = 0;

/** The prepared-statement name of `sql`, the same on every connection of the process. */
export function statementName(sql: string): string | undefined {
  let name = statementNames.get(sql);
  if (name === undefined) {
    if (statementNames.size >= STATEMENT_NAMES_LIMIT) return undefined;
    name = `tb_${(++statementSeq).toString(36)}`;
    statementNames.set(sql, name);
  }
  return name;
}

/** Gives `sql` a fresh name, so every connection prepares it again (the old plan is refused). */
export function renameStatement(sql: string): string {
  const name = `tb_${(++statementSeq).toString(36)}`;
  statementNames.set(sql, name);
  return name;
}
