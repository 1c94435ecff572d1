/**
 * The `where` syntax of `find` and `count`, compiled to SQL text with bound values. Every key
 * must be an attribute; every value goes through the attribute's value check; the SQL text
 * depends only on the shape (keys, operators, list lengths), never on the values.
 *
 * | where | SQL |
 * | --- | --- |
 * | `{ name: 'Ada' }` | `name = $1` |
 * | `{ email: null }` | `email IS NULL` |
 * | `{ id: [1, 2] }` | `id IN ($1, $2)` |
 * | `{ age: { gte: 18, lt: 65 } }` | `age >= $1 AND age < $2` |
 * | `{ id: { in: [1, 2] } }`, `{ id: { notIn: [3] } }` | `id IN (…)`, `id NOT IN (…)` |
 * | `{ email: { ne: null } }` | `email IS NOT NULL` |
 * | `{ name: { like: 'A%' } }` | `name LIKE $1` |
 * @module
 */
import { Errors } from '../errors.js';
import type { ClassMap } from './class-map.js';
import { attributeKeys, isPlainObject, showName, toParam } from './values.js';

/**
 * Conditions on one attribute; several in one object are ANDed.
 *
 * ```ts
 * await users.find({ age: { gte: 18, lt: 65 }, id: { notIn: [1, 2] } });
 * ```
 */
export interface Condition<V> {
  /** Equal (`null`: IS NULL). */
  eq?: V | null;
  /** Not equal (`null`: IS NOT NULL). Rows whose value is NULL never match `ne: value`. */
  ne?: V | null;
  /** Greater than. */
  gt?: V;
  /** Greater than or equal. */
  gte?: V;
  /** Less than. */
  lt?: V;
  /** Less than or equal. */
  lte?: V;
  /** One of the values (an empty list matches nothing). */
  in?: readonly V[];
  /** None of the values (an empty list matches everything non-null). */
  notIn?: readonly V[];
  /** SQL LIKE pattern (`%`, `_`); case sensitivity follows the column's collation. */
  like?: string;
}

/**
 * A filter: attribute → value (equality), `null` (IS NULL), a list (IN) or a {@link Condition}.
 * All entries are ANDed; `{}` matches every row. An `undefined` value is refused, never ignored
 * (a missing request parameter must not turn a filter into "every row").
 *
 * ```ts
 * const where: Where<User> = { name: 'Ada', email: { ne: null }, id: [1, 2, 3] };
 * ```
 */
export type Where<T> = { [K in keyof T]?: T[K] | null | readonly T[K][] | Condition<T[K]> };

/**
 * Longest IN list accepted (PostgreSQL allows 65535 bound values per statement).
 *
 * ```ts
 * if (ids.length > MAX_LIST) for (const part of chunks(ids, MAX_LIST)) await users.find({ id: part });
 * ```
 */
export const MAX_LIST = 10_000;

const COMPARE: Record<string, string> = { eq: '=', ne: '<>', gt: '>', gte: '>=', lt: '<', lte: '<=', like: 'LIKE' };
const OPERATORS = new Set([...Object.keys(COMPARE), 'in', 'notIn']);

function list(map: ClassMap, attr: string, values: unknown, negate: boolean, params: unknown[]): string {
  if (!Array.isArray(values)) throw Errors.invalidArgument(`where.${attr}.${negate ? 'notIn' : 'in'} must be an array`);
  if (values.length > MAX_LIST) throw Errors.invalidArgument(`where.${attr} lists ${values.length} values; at most ${MAX_LIST}`);
  if (map.types.get(attr) === 'json') throw Errors.invalidArgument(`where.${attr}: a json attribute can only be compared with null`);
  if (values.length === 0) return negate ? `${map.qcolumn.get(attr)} IS NOT NULL` : '1 = 0';
  const marks = values.map((v) => {
    if (v === null || v === undefined) throw Errors.invalidArgument(`where.${attr} lists null; match NULL with { ${attr}: null } instead`);
    params.push(toParam(map, attr, v));
    return map.dialect.placeholder(params.length);
  });
  return `${map.qcolumn.get(attr)} ${negate ? 'NOT IN' : 'IN'} (${marks.join(', ')})`;
}

function compare(map: ClassMap, attr: string, op: string, v: unknown, params: unknown[]): string {
  const col = map.qcolumn.get(attr) as string;
  if (v === null && (op === 'eq' || op === 'ne')) return `${col} IS ${op === 'ne' ? 'NOT ' : ''}NULL`;
  if (v === null || v === undefined) throw Errors.invalidArgument(`where.${attr}.${op} needs a value`);
  if (map.types.get(attr) === 'json') throw Errors.invalidArgument(`where.${attr}: a json attribute can only be compared with null`);
  if (op === 'like' && typeof v !== 'string') throw Errors.invalidArgument(`where.${attr}.like must be a string pattern`);
  params.push(toParam(map, attr, v));
  return `${col} ${COMPARE[op]} ${map.dialect.placeholder(params.length)}`;
}

/**
 * Compiles `where` into ` WHERE …` (or `''` for no condition), appending its values to `params`.
 *
 * ```ts
 * const params: unknown[] = [];
 * buildWhere(map, { age: { gt: 3 } }, params); // ' WHERE "age" > $1', params = [3]
 * ```
 * @throws BrokerError `INVALID_ARGUMENT` for unknown keys or operators and for bad values
 */
export function buildWhere(map: ClassMap, where: unknown, params: unknown[]): string {
  if (where === undefined || where === null) return '';
  const parts: string[] = [];
  for (const attr of attributeKeys(map, where, 'where')) {
    const v = (where as Record<string, unknown>)[attr];
    // `{ id: undefined }` matching every row is how a missing request parameter deletes or
    // leaks a whole table: refuse it instead of dropping the condition.
    if (v === undefined) throw Errors.invalidArgument(`where.${attr} is undefined; leave the key out, or match NULL with null`);
    if (Array.isArray(v)) {
      parts.push(list(map, attr, v, false, params));
    } else if (isPlainObject(v)) {
      const ops = Object.keys(v);
      if (ops.length === 0) throw Errors.invalidArgument(`where.${attr} is an empty condition; give a value or an operator (${[...OPERATORS].join(', ')})`);
      for (const op of ops) {
        if (!OPERATORS.has(op)) throw Errors.invalidArgument(`where.${attr} has the unknown operator ${showName(op)}; operators: ${[...OPERATORS].join(', ')}`);
        const arg = v[op];
        if (arg === undefined) throw Errors.invalidArgument(`where.${attr}.${op} is undefined; leave the operator out, or use null with eq/ne`);
        parts.push(op === 'in' || op === 'notIn' ? list(map, attr, arg, op === 'notIn', params) : compare(map, attr, op, arg, params));
      }
    } else {
      parts.push(compare(map, attr, 'eq', v, params));
    }
  }
  return parts.length === 0 ? '' : ` WHERE ${parts.join(' AND ')}`;
}
