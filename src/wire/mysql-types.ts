/**
 * How MySQL/MariaDB values become JavaScript values, aligned with the PostgreSQL driver so both
 * kinds give the same types (the README's type table). Mostly mysql2 options, which cost nothing
 * per row; the two rules mysql2 has no option for run as a pass over only the columns they touch
 * (a `typeCast` function would wrap every cell of every result on the main thread).
 *
 * - `BIGINT` → number when within ±(2^53 − 1), `bigint` beyond;
 * - `TINYINT(1)`/`BOOLEAN` → boolean;
 * - `DATE` → `'YYYY-MM-DD'` text; `DATETIME`/`TIMESTAMP` → `Date` in UTC (session time zone UTC);
 * - `JSON` → the JSON text, as MariaDB (whose JSON is LONGTEXT) always gives it;
 * - objects passed as values are bound as text, never expanded into `key = value` lists.
 * @module
 */

/**
 * mysql2 connection options for the types above.
 *
 * ```ts
 * mysql.createConnection({ ...MYSQL_TYPE_OPTIONS, host, user });
 * ```
 */
export const MYSQL_TYPE_OPTIONS: Readonly<Record<string, unknown>> = Object.freeze({
  supportBigNumbers: true,
  bigNumberStrings: false,
  decimalNumbers: false,
  dateStrings: ['DATE'],
  timezone: 'Z',
  jsonStrings: true,
  // CVE-2021-27959 / mysql2#1914: an object value must never become SQL structure.
  stringifyObjects: true,
});

/**
 * Run once on every new connection, so TIMESTAMP columns are read and written in UTC.
 *
 * ```ts
 * conn.query({ sql: MYSQL_SESSION_SQL }, cb);
 * ```
 */
export const MYSQL_SESSION_SQL = "SET time_zone = '+00:00'";

/** The structural subset of a mysql2 column definition we read. */
interface ColumnDef {
  columnType?: number;
  columnLength?: number;
}

// Column type codes of the protocol (mysql_com.h enum_field_types).
const TYPE_TINY = 1;
const TYPE_LONGLONG = 8;

/**
 * Applies the two rules mysql2 has no option for, in place: BIGINT text past 2^53 becomes a
 * bigint, TINYINT(1) becomes a boolean. Touches only the columns of those types.
 *
 * ```ts
 * normalizeRows(rows, fields); // [['9007199254740993', 1]] -> [[9007199254740993n, true]]
 * ```
 */
export function normalizeRows(rows: unknown[][], fields: readonly ColumnDef[]): void {
  if (rows.length === 0) return;
  for (let c = 0; c < fields.length; c++) {
    const f = fields[c];
    if (f.columnType === TYPE_LONGLONG) {
      for (const row of rows) {
        const v = row[c];
        // supportBigNumbers gives a number when exact and a string only past 2^53.
        if (typeof v === 'string') row[c] = BigInt(v);
      }
    } else if (f.columnType === TYPE_TINY && f.columnLength === 1) {
      for (const row of rows) {
        const v = row[c];
        if (typeof v === 'number') row[c] = v !== 0;
      }
    }
  }
}
