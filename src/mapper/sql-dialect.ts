/**
 * The SQL differences between the kinds the mapper generates for, as small overrides (STYLE.md
 * point 4): placeholders, identifier quoting, how an INSERT reports its key, LIMIT/OFFSET, and
 * the catalog's name for the current schema. The mapper never branches on the kind itself.
 * @module
 */

/**
 * The database kinds the mapper speaks.
 *
 * ```ts
 * const kind: DialectKind = env.kinds[0];
 * ```
 */
export type DialectKind = 'pg' | 'mysql';

/**
 * What differs in generated SQL from one database kind to another.
 *
 * ```ts
 * const d = dialectOf('pg');
 * d.placeholder(1);       // '$1'
 * d.quoteIdent('order');  // '"order"'
 * ```
 */
export interface SqlDialect {
  /** The kind this dialect writes for. */
  readonly kind: DialectKind;
  /** The bound-parameter marker of the `i`-th (1-based) value: `$1` or `?`. */
  placeholder(i: number): string;
  /** An identifier, quoted by the kind's rules (the quote character doubled inside). */
  quoteIdent(name: string): string;
  /** True when INSERT/UPDATE can return the row (`RETURNING`); otherwise the key comes from `insertId`. */
  readonly returning: boolean;
  /** The INSERT tail for a row of only default values. */
  readonly insertDefaults: string;
  /** LIMIT/OFFSET with bound values; `limit` or `offset` absent leaves that part out. */
  limitClause(limit: string | undefined, offset: string | undefined): string;
  /** SQL for the schema the connection works in (the catalog's `table_schema`). */
  readonly currentSchema: string;
}

/** MySQL's documented "no limit": the largest unsigned BIGINT. */
const MYSQL_NO_LIMIT = '18446744073709551615';

const pg: SqlDialect = Object.freeze({
  kind: 'pg' as const,
  placeholder: (i: number) => `$${i}`,
  quoteIdent: (name: string) => `"${name.replace(/"/g, '""')}"`,
  returning: true,
  insertDefaults: 'DEFAULT VALUES',
  limitClause: (limit: string | undefined, offset: string | undefined) =>
    (limit !== undefined ? ` LIMIT ${limit}` : '') + (offset !== undefined ? ` OFFSET ${offset}` : ''),
  currentSchema: 'current_schema()',
});

const mysql: SqlDialect = Object.freeze({
  kind: 'mysql' as const,
  placeholder: () => '?',
  quoteIdent: (name: string) => `\`${name.replace(/`/g, '``')}\``,
  returning: false,
  insertDefaults: '() VALUES ()',
  // MySQL has no OFFSET without LIMIT.
  limitClause: (limit: string | undefined, offset: string | undefined) =>
    limit === undefined && offset === undefined ? '' : ` LIMIT ${limit ?? MYSQL_NO_LIMIT}${offset !== undefined ? ` OFFSET ${offset}` : ''}`,
  currentSchema: 'database()',
});

const DIALECTS: Readonly<Record<DialectKind, SqlDialect>> = Object.freeze({ pg, mysql });

/**
 * The dialect of a database kind (as `connect()`'s environment names it).
 *
 * ```ts
 * dialectOf('mysql').placeholder(3); // '?'
 * ```
 */
export function dialectOf(kind: DialectKind): SqlDialect {
  const d = Object.hasOwn(DIALECTS, kind) ? DIALECTS[kind] : undefined;
  if (d === undefined) throw new TypeError(`no SQL dialect for database kind ${JSON.stringify(kind)}`);
  return d;
}
