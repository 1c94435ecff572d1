/**
 * How PostgreSQL values become JavaScript values, aligned with the MySQL driver so both kinds
 * give the same types (the README's type table): per-client parsers, nothing global, so a `pg`
 * the application uses itself keeps its own defaults.
 *
 * - `int8` → number when within ±(2^53 − 1), `bigint` beyond (never a rounded number);
 * - `date` → the `'YYYY-MM-DD'` text (a calendar day has no time zone);
 * - `timestamp` (without time zone) → a `Date` read as UTC; `timestamptz` → a `Date`;
 * - `json`/`jsonb` → the JSON text: parsing belongs in the calling thread, not the main thread
 *   (the mapper parses attributes typed `json`).
 * @module
 */
import pg from 'pg';

const INT8 = 20;
const JSON_OID = 114;
const JSONB = 3802;
const DATE = 1082;
const TIMESTAMP = 1114;
const TIMESTAMPTZ = 1184;

const text = (s: string): string => s;

/**
 * The integer text as a number when exact, else a bigint.
 *
 * ```ts
 * parseInt8('9007199254740993'); // 9007199254740993n
 * ```
 */
export function parseInt8(s: string): number | bigint {
  const n = Number(s);
  return Number.isSafeInteger(n) ? n : BigInt(s);
}

const parseTimestamptz = pg.types.getTypeParser(TIMESTAMPTZ, 'text') as (s: string) => Date | number;

/**
 * A `timestamp without time zone` as the UTC instant of its wall-clock reading.
 *
 * ```ts
 * parseTimestampUtc('2024-01-02 03:04:05'); // 2024-01-02T03:04:05.000Z
 * ```
 */
export function parseTimestampUtc(s: string): Date | number {
  if (s === 'infinity' || s === '-infinity') return parseTimestamptz(s);
  // The offset goes before a trailing era marker: '0044-03-15 12:00:00+00 BC'.
  return parseTimestamptz(s.endsWith(' BC') ? `${s.slice(0, -3)}+00 BC` : `${s}+00`);
}

const OVERRIDES = new Map<number, (s: string) => unknown>([
  [INT8, parseInt8],
  [DATE, text],
  [TIMESTAMP, parseTimestampUtc],
  [JSON_OID, text],
  [JSONB, text],
]);

/**
 * The `types` option of every broker-owned `pg.Client`.
 *
 * ```ts
 * new pg.Client({ connectionString, types: pgTypes });
 * ```
 */
export const pgTypes = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') => {
    if (format !== 'binary') {
      const own = OVERRIDES.get(oid);
      if (own !== undefined) return own;
    }
    return pg.types.getTypeParser(oid, format);
  }) as typeof pg.types.getTypeParser,
};

/**
 * Dates are sent as UTC ISO text, so a `timestamp` column stores the UTC wall clock whatever the
 * process's time zone (pg's own formatting uses local time). Copies the array only when needed.
 *
 * ```ts
 * client.query({ text, values: utcDateParams(params) });
 * ```
 */
export function utcDateParams(params: readonly unknown[] | undefined): unknown[] | undefined {
  if (params === undefined) return undefined;
  let out: unknown[] | undefined;
  for (let i = 0; i < params.length; i++) {
    const v = params[i];
    if (v instanceof Date) {
      out ??= params.slice();
      const y = v.getUTCFullYear();
      // Outside years 0..9999 ISO text is not what PostgreSQL reads; pg's own formatting handles those.
      out[i] = Number.isNaN(y) || y < 1 || y > 9999 ? v : v.toISOString();
    }
  }
  return out ?? (params as unknown[]);
}
