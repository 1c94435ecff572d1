/**
 * Reading a database's catalog (`information_schema`) through the client: tables, columns, SQL
 * types, nullability and primary keys of the schema the connection works in, with each SQL type
 * reduced to the config's column types. Codegen builds on it.
 * @module
 */
import type { ColumnType } from '../config/types.js';
import type { QueryResult } from '../client/result.js';
import { dialectOf, type DialectKind, type SqlDialect } from './sql-dialect.js';

/**
 * One column as the catalog describes it.
 *
 * ```ts
 * const col: CatalogColumn = { sqlType: 'tinyint(1)', type: 'boolean', nullable: true };
 * ```
 */
export interface CatalogColumn {
  /** The SQL type as the catalog spells it (`integer`, `bigint(20) unsigned`, `tinyint(1)` …). */
  sqlType: string;
  /** The column type it maps to, when the mapper knows one. */
  type: ColumnType | undefined;
  /** True when the column accepts NULL. */
  nullable: boolean;
}

/**
 * One table: its columns in order and its primary key columns.
 *
 * ```ts
 * const t = (await readCatalog(db, 'main')).main.users;
 * t.primaryKey; // ['id']
 * ```
 */
export interface CatalogTable {
  columns: Record<string, CatalogColumn>;
  primaryKey: string[];
}

/**
 * Catalog facts by database (config name), then table, then column.
 *
 * ```ts
 * const catalog = await readCatalog(db, 'main');
 * catalog.main.users.columns.email.nullable; // true
 * ```
 */
export type Catalog = Record<string, Record<string, CatalogTable>>;

/**
 * The part of a client catalog reading needs: a `Db` is one.
 *
 * ```ts
 * const source: CatalogSource = await connect();
 * ```
 */
export interface CatalogSource {
  query<R = Record<string, unknown>>(database: string, sql: string, params?: readonly unknown[]): Promise<QueryResult<R>>;
}

const TYPE_RULES: readonly [RegExp, ColumnType][] = [
  [/^tinyint\(1\)/, 'boolean'],
  [/^bigint\b/, 'bigint'],
  [/^(smallint|integer|int|mediumint|tinyint)\b/, 'integer'],
  [/^(numeric|decimal)\b/, 'numeric'],
  [/^(real|double|float)\b/, 'float'],
  [/^(boolean|bool)\b/, 'boolean'],
  [/^(text|tinytext|mediumtext|longtext|character|char|varchar|uuid|enum|set)\b/, 'text'],
  [/^date$/, 'date'],
  [/^(timestamp|datetime)\b/, 'timestamp'],
  [/^jsonb?$/, 'json'],
  [/^(bytea|blob|tinyblob|mediumblob|longblob|binary|varbinary)\b/, 'bytes'],
];

/**
 * The column type of a catalog SQL type, for either kind, or `undefined` (arrays, intervals,
 * enums of PostgreSQL, geometry …: the mapper passes those through as the driver gives them).
 *
 * ```ts
 * columnTypeOf('timestamp with time zone'); // 'timestamp'
 * columnTypeOf('tinyint(1)');               // 'boolean'
 * ```
 */
export function columnTypeOf(sqlType: string): ColumnType | undefined {
  const t = sqlType.trim().toLowerCase();
  for (const [re, type] of TYPE_RULES) if (re.test(t)) return type;
  return undefined;
}

/**
 * Finds the kind behind a configured database: both kinds answer `version()`.
 *
 * ```ts
 * await kindOf(db, 'legacy'); // 'mysql'
 * ```
 */
export async function kindOf(db: CatalogSource, database: string): Promise<DialectKind> {
  const r = await db.query<{ v: unknown }>(database, 'SELECT version() AS v');
  return /postgres/i.test(String(r.rows[0]?.v ?? '')) ? 'pg' : 'mysql';
}

function tableFilter(d: SqlDialect, column: string, tables: readonly string[] | undefined, params: unknown[]): string {
  if (tables === undefined) return '';
  if (tables.length === 0) return ' AND 1 = 0';
  const marks = tables.map((t) => {
    params.push(String(t));
    return d.placeholder(params.length);
  });
  return ` AND ${column} IN (${marks.join(', ')})`;
}

/**
 * Reads the catalog of `database` (all its tables, or only `tables`) through the client.
 *
 * ```ts
 * const catalog = await readCatalog(db, 'main', ['users', 'orders']);
 * ```
 */
export async function readCatalog(db: CatalogSource, database: string, tables?: readonly string[]): Promise<Catalog> {
  return (await readCatalogAndKind(db, database, tables)).catalog;
}

/**
 * {@link readCatalog}, also telling the database's kind.
 *
 * ```ts
 * const { catalog, kind } = await readCatalogAndKind(db, 'main');
 * ```
 */
export async function readCatalogAndKind(db: CatalogSource, database: string, tables?: readonly string[]): Promise<{ catalog: Catalog; kind: DialectKind }> {
  const d = dialectOf(await kindOf(db, database));
  // MySQL spells the full type (with length and unsigned) in column_type; PostgreSQL in data_type.
  const typeColumn = d.kind === 'mysql' ? 'column_type' : 'data_type';
  const p1: unknown[] = [];
  const cols = await db.query<Record<string, unknown>>(database,
    `SELECT table_name AS tname, column_name AS cname, ${typeColumn} AS ctype, is_nullable AS nullable FROM information_schema.columns ` +
    `WHERE table_schema = ${d.currentSchema}${tableFilter(d, 'table_name', tables, p1)} ORDER BY table_name, ordinal_position`, p1);
  const p2: unknown[] = [];
  const keys = await db.query<Record<string, unknown>>(database,
    'SELECT kcu.table_name AS tname, kcu.column_name AS cname FROM information_schema.table_constraints tc ' +
    'JOIN information_schema.key_column_usage kcu ON kcu.constraint_name = tc.constraint_name AND kcu.table_schema = tc.table_schema AND kcu.table_name = tc.table_name ' +
    `WHERE tc.constraint_type = 'PRIMARY KEY' AND tc.table_schema = ${d.currentSchema}${tableFilter(d, 'kcu.table_name', tables, p2)} ORDER BY kcu.table_name, kcu.ordinal_position`, p2);
  const out: Record<string, CatalogTable> = Object.create(null) as Record<string, CatalogTable>;
  for (const row of cols.rows) {
    const t = String(row['tname']);
    const table = (out[t] ??= { columns: Object.create(null) as Record<string, CatalogColumn>, primaryKey: [] });
    const sqlType = String(row['ctype']);
    table.columns[String(row['cname'])] = { sqlType, type: columnTypeOf(sqlType), nullable: String(row['nullable']).toUpperCase() === 'YES' };
  }
  for (const row of keys.rows) out[String(row['tname'])]?.primaryKey.push(String(row['cname']));
  if (d.kind === 'mysql') await markMariaDbJson(db, database, out);
  return { catalog: { [database]: out }, kind: d.kind };
}

/** MariaDB's JSON is LONGTEXT with a `json_valid(col)` check; the check tells it apart. */
async function markMariaDbJson(db: CatalogSource, database: string, tables: Record<string, CatalogTable>): Promise<void> {
  let rows: Record<string, unknown>[];
  try {
    rows = (await db.query<Record<string, unknown>>(database,
      'SELECT table_name AS tname, check_clause AS clause FROM information_schema.check_constraints WHERE constraint_schema = database()')).rows;
  } catch {
    return; // MySQL: no table_name there, and its JSON columns say 'json' already
  }
  for (const row of rows) {
    const m = /^\s*json_valid\(\s*`?([A-Za-z0-9_]+)`?\s*\)\s*$/i.exec(String(row['clause']));
    const col = m ? tables[String(row['tname'])]?.columns[m[1]] : undefined;
    if (col !== undefined) col.type = 'json';
  }
}
