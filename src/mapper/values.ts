/**
 * Values between objects and bound parameters, both ways (RELIABILITY.md S3). On the way in,
 * only scalars pass (objects only into `json` attributes, serialised to text here), typed
 * attributes are checked against their type, and NaN, Infinity and invalid dates are refused.
 * On the way out, the calling thread finishes what the drivers leave as text (JSON) and restores
 * what a thread hop changed (a Buffer arrives as a Uint8Array).
 * @module
 */
import type { ColumnType } from '../config/types.js';
import { Errors } from '../errors.js';
import { FORBIDDEN_ATTRIBUTES } from '../util/identifiers.js';
import type { ClassMap } from './class-map.js';

/**
 * A primary key value.
 *
 * ```ts
 * const key: KeyValue = 42n;
 * ```
 */
export type KeyValue = string | number | bigint;

const INT_TEXT = /^-?\d{1,40}$/;
const NUMERIC_TEXT = /^-?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$/;
const DATE_TEXT = /^\d{4}-\d{2}-\d{2}$/;
// Control and invisible characters are exactly what a message must not carry raw.
// eslint-disable-next-line no-control-regex
const INVISIBLE = /[\u0000-\u001f\u007f-\u009f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb]/g;

/**
 * A user-supplied name fit for an error message: quoted, cut, control characters escaped.
 *
 * ```ts
 * showName('a\u0000b'); // '"a\\u0000b"'
 * ```
 */
export function showName(name: string): string {
  const cut = name.length > 60 ? `${name.slice(0, 60)}…` : name;
  return `"${cut.replace(/["\\]/g, (c) => `\\${c}`).replace(INVISIBLE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)}"`;
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'number') return Number.isNaN(v) ? 'NaN' : Number.isFinite(v) ? 'a number' : 'an infinite number';
  if (typeof v === 'object') return v instanceof Date ? 'an invalid Date' : 'an object';
  return `a ${typeof v}`;
}

function bad(cls: string, attr: string, expected: string, v: unknown): never {
  throw Errors.invalidArgument(`${cls}.${attr} must be ${expected}, not ${describe(v)}`);
}

/**
 * True for a plain object (`{}` or `Object.create(null)`), the only shape accepted as a record.
 *
 * ```ts
 * isPlainObject(new Date()); // false
 * ```
 */
export function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === Object.prototype || proto === null;
}

/**
 * The own keys of a record argument, each checked to be an attribute of the class: no mass
 * assignment of unknown keys, no `__proto__`/`constructor`.
 *
 * ```ts
 * attributeKeys(map, { name: 'Ada' }, 'the object to insert'); // ['name']
 * ```
 * @throws BrokerError `INVALID_ARGUMENT`
 */
export function attributeKeys(map: ClassMap, obj: unknown, what: string): string[] {
  if (!isPlainObject(obj)) throw Errors.invalidArgument(`${what} must be a plain object of ${map.name}'s attributes, not ${describe(obj)}`);
  const keys = Object.keys(obj);
  for (const k of keys) {
    if (FORBIDDEN_ATTRIBUTES.has(k)) throw Errors.invalidArgument(`${what} has the key ${showName(k)}, which is never accepted`);
    if (!map.isAttribute(k)) throw Errors.invalidArgument(`${what} has the key ${showName(k)}, which is not an attribute of ${map.name} (attributes: ${map.attributes.join(', ')})`);
  }
  return keys;
}

function scalar(cls: string, attr: string, v: unknown): unknown {
  switch (typeof v) {
    case 'string':
    case 'boolean':
    case 'bigint':
      return v;
    case 'number':
      if (!Number.isFinite(v)) bad(cls, attr, 'a finite number', v);
      return v;
    case 'object':
      if (v instanceof Date && !Number.isNaN(v.getTime())) return v;
      if (v instanceof Uint8Array) return v;
      return bad(cls, attr, 'a scalar (string, number, bigint, boolean, Date, Uint8Array or null)', v);
    default:
      return bad(cls, attr, 'a scalar', v);
  }
}

function integer(cls: string, attr: string, v: unknown): unknown {
  if (typeof v === 'bigint') return v;
  if (typeof v === 'number' && Number.isSafeInteger(v)) return v;
  if (typeof v === 'string' && INT_TEXT.test(v)) return v;
  return bad(cls, attr, 'an integer (a safe-integer number, a bigint or integer text)', v);
}

const WRITERS: Record<ColumnType, (cls: string, attr: string, v: unknown) => unknown> = {
  integer,
  bigint: integer,
  numeric: (cls, attr, v) => {
    if (typeof v === 'bigint' || (typeof v === 'number' && Number.isFinite(v))) return String(v);
    if (typeof v === 'string' && NUMERIC_TEXT.test(v)) return v;
    return bad(cls, attr, 'a finite number, a bigint or numeric text', v);
  },
  float: (cls, attr, v) => (typeof v === 'number' && Number.isFinite(v) ? v : bad(cls, attr, 'a finite number', v)),
  boolean: (cls, attr, v) => (typeof v === 'boolean' ? v : bad(cls, attr, 'a boolean', v)),
  text: (cls, attr, v) => (typeof v === 'string' ? v : bad(cls, attr, 'a string', v)),
  date: (cls, attr, v) => {
    if (typeof v === 'string' && DATE_TEXT.test(v)) return v;
    if (v instanceof Date && !Number.isNaN(v.getTime())) return v.toISOString().slice(0, 10);
    return bad(cls, attr, "a 'YYYY-MM-DD' string or a valid Date", v);
  },
  timestamp: (cls, attr, v) => {
    const d = typeof v === 'string' ? new Date(v) : v;
    if (d instanceof Date && !Number.isNaN(d.getTime())) return d;
    return bad(cls, attr, 'a valid Date or an ISO 8601 timestamp string', v);
  },
  json: (cls, attr, v) => {
    let text: string | undefined;
    try {
      text = JSON.stringify(v);
    } catch (err) {
      bad(cls, attr, `JSON-serialisable (${(err as Error).message})`, v);
    }
    return text === undefined ? bad(cls, attr, 'JSON-serialisable', v) : text;
  },
  bytes: (cls, attr, v) => (v instanceof Uint8Array ? v : bad(cls, attr, 'a Uint8Array or Buffer', v)),
};

/**
 * A value of `attr` as a bound parameter. `null` stays NULL; a declared type is enforced.
 *
 * ```ts
 * toParam(map, 'data', { a: 1 }); // '{"a":1}' for a json attribute
 * ```
 * @throws BrokerError `INVALID_ARGUMENT`
 */
export function toParam(map: ClassMap, attr: string, v: unknown): unknown {
  if (v === null) return null;
  const t = map.types.get(attr);
  return t === undefined ? scalar(map.name, attr, v) : WRITERS[t](map.name, attr, v);
}

/**
 * A key value as given to `get`/`delete`, checked like a value of the key attribute.
 *
 * ```ts
 * toKeyParam(map, 42); // 42
 * ```
 * @throws BrokerError `INVALID_ARGUMENT`
 */
export function toKeyParam(map: ClassMap, key: unknown): unknown {
  if (key === null || key === undefined || (typeof key !== 'string' && typeof key !== 'number' && typeof key !== 'bigint')) {
    throw Errors.invalidArgument(`a key of ${map.name} must be a string, number or bigint, not ${describe(key)}`);
  }
  return toParam(map, map.key, key);
}

/**
 * The identity of a key value in an identity map: `1` and `1n` are the same entry; text keys
 * stay apart from numbers (a row read back carries the database's own key value).
 *
 * ```ts
 * keyId(1) === keyId(1n); // true
 * ```
 */
export function keyId(key: unknown): string {
  return typeof key === 'number' || typeof key === 'bigint' ? `n${String(key)}` : `s${String(key)}`;
}

function intOut(v: unknown): unknown {
  if (typeof v !== 'string' || !INT_TEXT.test(v)) return v;
  const n = Number(v);
  return Number.isSafeInteger(n) ? n : BigInt(v);
}

const READERS: Partial<Record<ColumnType, (v: unknown) => unknown>> = {
  integer: intOut,
  bigint: intOut,
  numeric: (v) => (typeof v === 'number' || typeof v === 'bigint' ? String(v) : v),
  float: (v) => (typeof v === 'string' && NUMERIC_TEXT.test(v) ? Number(v) : v),
  boolean: (v) => (typeof v === 'number' || typeof v === 'bigint' ? v !== 0 && v !== 0n : v),
  date: (v) => (v instanceof Date ? v.toISOString().slice(0, 10) : v),
  timestamp: (v) => (typeof v === 'string' ? new Date(v) : v),
  json: (v) => {
    if (typeof v !== 'string') return v;
    try {
      return JSON.parse(v) as unknown;
    } catch {
      return v;
    }
  },
  // A Buffer crossing a MessagePort arrives as a plain Uint8Array; a view costs no copy.
  bytes: (v) => (v instanceof Uint8Array && !Buffer.isBuffer(v) ? Buffer.from(v.buffer, v.byteOffset, v.byteLength) : v),
};

/**
 * Turns a result row (keyed by attribute, see `ClassMap.selectList`) into an object of the
 * class, in place: typed attributes get their JavaScript type.
 *
 * ```ts
 * fromRow<User>(map, { id: 1, data: '{"a":1}' }).data; // { a: 1 }
 * ```
 */
export function fromRow<T>(map: ClassMap, row: Record<string, unknown>): T {
  for (const [attr, t] of map.types) {
    const read = READERS[t];
    const v = row[attr];
    if (read !== undefined && v !== null && v !== undefined) row[attr] = read(v);
  }
  return row as T;
}
