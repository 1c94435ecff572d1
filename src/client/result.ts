/**
 * Query results as users see them, rebuilt in the receiving thread from the wire's arrays.
 * @module
 */
import type { OkReply } from '../transport/protocol.js';

/** A column of a result. */
export interface FieldInfo {
  /** The column's name (its alias when the query gave one). */
  name: string;
}

/**
 * What `query` resolves to.
 *
 * ```ts
 * const { rows, rowCount } = await db.query<{ x: number }>('main', 'select 1 as x');
 * ```
 */
export interface QueryResult<R = Record<string, unknown>> {
  /** One object per row, keyed by column name. */
  rows: R[];
  /** Rows returned, or rows affected by INSERT/UPDATE/DELETE. */
  rowCount: number;
  /** The columns, in order. Empty for statements that return no rows. */
  fields: FieldInfo[];
  /** MySQL/MariaDB: the generated key of an INSERT. PostgreSQL uses `RETURNING`. */
  insertId?: number | bigint;
}

/** Turns a wire reply into a {@link QueryResult}; the object building happens here, off the main thread. */
export function toResult<R>(reply: OkReply): QueryResult<R> {
  const names = reply.f ?? [];
  const raw = reply.r ?? [];
  const rows = new Array<R>(raw.length);
  const width = names.length;
  // A column aliased "__proto__" must become an own property, never the row's prototype.
  const hostile = names.includes('__proto__');
  for (let i = 0; i < raw.length; i++) {
    const src = raw[i];
    const row: Record<string, unknown> = {};
    if (hostile) {
      for (let c = 0; c < width; c++) Object.defineProperty(row, names[c], { value: src[c], enumerable: true, writable: true, configurable: true });
    } else {
      for (let c = 0; c < width; c++) row[names[c]] = src[c];
    }
    rows[i] = row as R;
  }
  const out: QueryResult<R> = { rows, rowCount: reply.n ?? raw.length, fields: names.map((name) => ({ name })) };
  if (reply.i !== undefined) out.insertId = reply.i;
  return out;
}
