/**
 * The statements of the mapper, built from a {@link ClassMap}: every identifier comes quoted
 * from the class map, every value is a bound parameter. For one operation and one shape of
 * input (which attributes, which operators, list lengths) the SQL text is always the same.
 * @module
 */
import { Errors } from '../errors.js';
import type { ClassMap } from './class-map.js';
import { attributeKeys, showName, toKeyParam, toParam } from './values.js';
import { buildWhere } from './where.js';

/**
 * SQL text and its bound values.
 *
 * ```ts
 * const { sql, params } = selectByKey(map, 1); // 'SELECT … WHERE "id" = $1', [1]
 * ```
 */
export interface Statement {
  sql: string;
  params: unknown[];
}

/**
 * Sort order: an attribute (ascending), or `{ attr: 'asc' | 'desc' }`, or a list of those.
 *
 * ```ts
 * const order: OrderBy<User> = ['name', { id: 'desc' }];
 * ```
 */
export type OrderBy<T> = (keyof T & string) | { [K in keyof T]?: 'asc' | 'desc' } | readonly ((keyof T & string) | { [K in keyof T]?: 'asc' | 'desc' })[];

/**
 * Options of `find`.
 *
 * ```ts
 * await users.find({}, { orderBy: [{ name: 'asc' }, { id: 'desc' }], limit: 20, offset: 40 });
 * ```
 */
export interface FindOptions<T> {
  /** Sort order; NULLs sort as the server does (PostgreSQL: last ascending, MySQL: first). */
  orderBy?: OrderBy<T>;
  /** At most this many rows (0 … 2^31 − 1). */
  limit?: number;
  /** Skip this many rows first (0 … 2^31 − 1). */
  offset?: number;
}

const MAX_ROWS = 2_147_483_647;

function count(name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > MAX_ROWS) throw Errors.invalidArgument(`${name} must be an integer between 0 and ${MAX_ROWS}`);
  return v;
}

function orderBy(map: ClassMap, spec: unknown): string {
  if (spec === undefined) return '';
  const items = Array.isArray(spec) ? spec : [spec];
  const parts: string[] = [];
  for (const item of items) {
    if (typeof item === 'string') {
      if (!map.isAttribute(item)) throw Errors.invalidArgument(`orderBy names ${showName(item)}, which is not an attribute of ${map.name}`);
      parts.push(`${map.qcolumn.get(item)} ASC`);
      continue;
    }
    for (const attr of attributeKeys(map, item, 'orderBy')) {
      const dir = (item as Record<string, unknown>)[attr];
      if (dir !== 'asc' && dir !== 'desc') throw Errors.invalidArgument(`orderBy.${attr} must be 'asc' or 'desc'`);
      parts.push(`${map.qcolumn.get(attr)} ${dir === 'asc' ? 'ASC' : 'DESC'}`);
    }
  }
  return parts.length === 0 ? '' : ` ORDER BY ${parts.join(', ')}`;
}

/**
 * `SELECT … WHERE key = ?`
 *
 * ```ts
 * selectByKey(map, 42).params; // [42]
 * ```
 */
export function selectByKey(map: ClassMap, key: unknown): Statement {
  const params = [toKeyParam(map, key)];
  return { sql: `SELECT ${map.selectList} FROM ${map.qtable} WHERE ${map.qcolumn.get(map.key)} = ${map.dialect.placeholder(1)}`, params };
}

/**
 * `SELECT … [WHERE …] [ORDER BY …] [LIMIT … OFFSET …]`
 *
 * ```ts
 * selectWhere(map, { name: 'Ada' }, { orderBy: 'id', limit: 10 });
 * ```
 */
export function selectWhere(map: ClassMap, where: unknown, opts: FindOptions<unknown> = {}): Statement {
  if (opts === null || typeof opts !== 'object') throw Errors.invalidArgument('find options must be an object');
  const params: unknown[] = [];
  let sql = `SELECT ${map.selectList} FROM ${map.qtable}${buildWhere(map, where, params)}${orderBy(map, opts.orderBy)}`;
  let limit: string | undefined;
  let offset: string | undefined;
  if (opts.limit !== undefined) {
    params.push(count('limit', opts.limit));
    limit = map.dialect.placeholder(params.length);
  }
  if (opts.offset !== undefined) {
    params.push(count('offset', opts.offset));
    offset = map.dialect.placeholder(params.length);
  }
  sql += map.dialect.limitClause(limit, offset);
  return { sql, params };
}

/**
 * `SELECT COUNT(*) AS n … [WHERE …]`
 *
 * ```ts
 * countWhere(map, { email: null }).sql; // 'SELECT COUNT(*) AS n FROM "users" WHERE "email" IS NULL'
 * ```
 */
export function countWhere(map: ClassMap, where: unknown): Statement {
  const params: unknown[] = [];
  return { sql: `SELECT COUNT(*) AS n FROM ${map.qtable}${buildWhere(map, where, params)}`, params };
}

/**
 * The version after `v`: numbers stay numbers while exact, then become bigints.
 *
 * ```ts
 * nextVersion(map, 3); // 4
 * ```
 */
export function nextVersion(map: ClassMap, v: unknown): number | bigint {
  if (typeof v === 'number' && Number.isSafeInteger(v)) return Number.isSafeInteger(v + 1) ? v + 1 : BigInt(v) + 1n;
  if (typeof v === 'bigint') return v + 1n;
  if (typeof v === 'string' && /^-?\d{1,30}$/.test(v)) return nextVersion(map, Number.isSafeInteger(Number(v)) ? Number(v) : BigInt(v));
  throw Errors.invalidArgument(`${map.name}.${map.version} (the version) must be an integer, not ${v === null ? 'null' : typeof v}`);
}

/**
 * `INSERT INTO … (…) VALUES (…)`, with `RETURNING` where the dialect has it. A versioned class
 * starts at version 1 unless the object gives one.
 *
 * ```ts
 * insertRow(map, { name: 'Ada' }).sql; // 'INSERT INTO "users" ("full_name", "version") VALUES ($1, $2) RETURNING …'
 * ```
 */
export function insertRow(map: ClassMap, obj: unknown): Statement & { values: Record<string, unknown> } {
  const keys = attributeKeys(map, obj, 'the object to insert');
  const values = Object.create(null) as Record<string, unknown>;
  for (const k of keys) {
    const v = (obj as Record<string, unknown>)[k];
    if (v !== undefined) values[k] = v;
  }
  if (map.version !== undefined && (values[map.version] === undefined || values[map.version] === null)) values[map.version] = 1;
  const cols: string[] = [];
  const marks: string[] = [];
  const params: unknown[] = [];
  for (const attr of map.attributes) {
    if (!Object.hasOwn(values, attr)) continue;
    params.push(toParam(map, attr, values[attr]));
    cols.push(map.qcolumn.get(attr) as string);
    marks.push(map.dialect.placeholder(params.length));
  }
  const body = cols.length === 0 ? map.dialect.insertDefaults : `(${cols.join(', ')}) VALUES (${marks.join(', ')})`;
  const returning = map.dialect.returning ? ` RETURNING ${map.selectList}` : '';
  return { sql: `INSERT INTO ${map.qtable} ${body}${returning}`, params, values };
}

/**
 * `UPDATE … SET … WHERE key = ? [AND version = ?]`: sets the attributes the object has (except
 * the key) and, for a versioned class, checks the object's version and bumps it.
 *
 * ```ts
 * updateRow(map, { id: 1, name: 'B', version: 3 }).sql; // '… SET "full_name" = $1, "version" = $2 WHERE "id" = $3 AND "version" = $4'
 * ```
 */
export function updateRow(map: ClassMap, obj: unknown): Statement & { key: unknown; version: number | bigint | undefined } {
  const keys = attributeKeys(map, obj, 'the object to update');
  const o = obj as Record<string, unknown>;
  const key = o[map.key];
  if (key === undefined || key === null) throw Errors.invalidArgument(`the object to update has no ${map.name}.${map.key} (its key)`);
  const params: unknown[] = [];
  const sets: string[] = [];
  const ph = () => map.dialect.placeholder(params.length);
  for (const attr of map.attributes) {
    if (attr === map.key || attr === map.version || !keys.includes(attr) || o[attr] === undefined) continue;
    params.push(toParam(map, attr, o[attr]));
    sets.push(`${map.qcolumn.get(attr)} = ${ph()}`);
  }
  let version: number | bigint | undefined;
  if (map.version !== undefined) {
    if (o[map.version] === undefined || o[map.version] === null) {
      throw Errors.invalidArgument(`the object to update has no ${map.name}.${map.version}; a versioned object must be read before it is updated`);
    }
    version = nextVersion(map, o[map.version]);
    params.push(version);
    sets.push(`${map.qcolumn.get(map.version)} = ${ph()}`);
  }
  const qkey = map.qcolumn.get(map.key) as string;
  // Nothing to set: still a statement whose row count tells whether the row exists.
  if (sets.length === 0) sets.push(`${qkey} = ${qkey}`);
  params.push(toKeyParam(map, key));
  let sql = `UPDATE ${map.qtable} SET ${sets.join(', ')} WHERE ${qkey} = ${ph()}`;
  if (map.version !== undefined) {
    params.push(toParam(map, map.version, o[map.version]));
    sql += ` AND ${map.qcolumn.get(map.version)} = ${ph()}`;
  }
  return { sql, params, key, version };
}

/**
 * `DELETE FROM … WHERE key = ? [AND version = ?]`
 *
 * ```ts
 * deleteRow(map, 1, 7).params; // [1, 7]
 * ```
 */
export function deleteRow(map: ClassMap, key: unknown, version: unknown): Statement {
  const params: unknown[] = [toKeyParam(map, key)];
  let sql = `DELETE FROM ${map.qtable} WHERE ${map.qcolumn.get(map.key)} = ${map.dialect.placeholder(1)}`;
  if (map.version !== undefined && version !== undefined && version !== null) {
    params.push(toParam(map, map.version, version));
    sql += ` AND ${map.qcolumn.get(map.version)} = ${map.dialect.placeholder(2)}`;
  }
  return { sql, params };
}
