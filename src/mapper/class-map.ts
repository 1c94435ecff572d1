/**
 * A mapped class as the SQL builder needs it: its table and columns, already quoted for its
 * database's dialect, attribute ↔ column both ways, the key, the version column and the declared
 * column types. Built once per class and thread from the config the broker published.
 * @module
 */
import type { ColumnType } from '../config/types.js';
import { Errors } from '../errors.js';
import type { ClassInfo } from '../transport/protocol.js';
import { attributeProblem, identifierProblem } from '../util/identifiers.js';
import { dialectOf, type DialectKind, type SqlDialect } from './sql-dialect.js';

/**
 * The column types the config may declare.
 *
 * ```ts
 * COLUMN_TYPES.includes('json'); // true
 * ```
 */
export const COLUMN_TYPES: readonly ColumnType[] = Object.freeze(['integer', 'bigint', 'numeric', 'float', 'boolean', 'text', 'date', 'timestamp', 'json', 'bytes']);

/**
 * One class, resolved for SQL generation. Every identifier in it passed the load-time rules and
 * is quoted here, once.
 *
 * ```ts
 * const map = buildClassMap(env.classes.User, 'pg');
 * map.qtable;                 // '"users"'
 * map.qcolumn.get('name');    // '"full_name"'
 * ```
 */
export interface ClassMap {
  /** The class name in the config. */
  readonly name: string;
  /** The database (config name) it lives in. */
  readonly database: string;
  /** The SQL dialect of that database. */
  readonly dialect: SqlDialect;
  /** The quoted table name. */
  readonly qtable: string;
  /** The key attribute. */
  readonly key: string;
  /** The version attribute, when the class has optimistic locking. */
  readonly version: string | undefined;
  /** Attribute names, in config order. */
  readonly attributes: readonly string[];
  /** attribute → quoted column. */
  readonly qcolumn: ReadonlyMap<string, string>;
  /** attribute → declared column type (only attributes that declare one). */
  readonly types: ReadonlyMap<string, ColumnType>;
  /** The SELECT list: every column, aliased to its attribute where the names differ. */
  readonly selectList: string;
  /** True when `name` is an attribute of the class (own, never a prototype key). */
  isAttribute(name: string): boolean;
}

function invalid(cls: string, what: string, why: string): never {
  throw Errors.identifierInvalid(`class ${JSON.stringify(cls)}: ${what} ${why}`);
}

/**
 * Resolves one class for a database kind. Re-checks the identifier rules (the config loader
 * already did) so that nothing unchecked can ever reach SQL text.
 *
 * ```ts
 * const map = buildClassMap(env.classes.User, env.kinds[env.databases.indexOf('main')]);
 * ```
 * @throws BrokerError `IDENTIFIER_INVALID`
 */
export function buildClassMap(info: ClassInfo, kind: DialectKind): ClassMap {
  const dialect = dialectOf(kind);
  const cls = info.name;
  const tableWhy = identifierProblem(info.table, kind);
  if (tableWhy) invalid(cls, 'table', tableWhy);
  const attributes = Object.keys(info.attributes);
  const qcolumn = new Map<string, string>();
  const select: string[] = [];
  for (const attr of attributes) {
    const attrWhy = attributeProblem(attr);
    if (attrWhy) invalid(cls, 'attribute', attrWhy);
    const column = info.attributes[attr];
    const colWhy = identifierProblem(column, kind);
    if (colWhy) invalid(cls, `column of attribute ${attr}`, colWhy);
    const q = dialect.quoteIdent(column);
    qcolumn.set(attr, q);
    select.push(column === attr ? q : `${q} AS ${dialect.quoteIdent(attr)}`);
  }
  if (!qcolumn.has(info.key)) invalid(cls, 'key', 'is not one of its attributes');
  if (info.version !== undefined && !qcolumn.has(info.version)) invalid(cls, 'version', 'is not one of its attributes');
  const types = new Map<string, ColumnType>();
  for (const [attr, t] of Object.entries(info.types ?? {})) {
    if (!qcolumn.has(attr) || !COLUMN_TYPES.includes(t as ColumnType)) invalid(cls, `type of ${attr}`, 'is not a known column type of one of its attributes');
    types.set(attr, t as ColumnType);
  }
  return Object.freeze({
    name: cls,
    database: info.database,
    dialect,
    qtable: dialect.quoteIdent(info.table),
    key: info.key,
    version: info.version,
    attributes: Object.freeze(attributes),
    qcolumn,
    types,
    selectList: select.join(', '),
    isAttribute: (name: string) => qcolumn.has(name),
  });
}
