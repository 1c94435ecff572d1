/**
 * Parameters of statements run through the binary protocol (issue 8), bound with the SQL type of
 * the literal mysql2's text formatting writes for them, so a statement behaves as it did as text:
 * `5` → INT, `1.5` → DECIMAL, `1e-7` → DOUBLE, `true` → INT, a `Date` → its
 * `'YYYY-MM-DD HH:MM:SS.mmm'` text in UTC, bytes → a binary string. `select ?`, `? / 2` or
 * `concat(?)` give what they gave. Values the text protocol expands or stringifies (arrays,
 * objects, NaN, integers past 2^53) are not bound: the statement keeps using the text protocol.
 * Also the COM_STMT_EXECUTE packet of such parameters.
 * @module
 */
import mysql from 'mysql2';
import { MYSQL_TYPE_OPTIONS } from './mysql-types.js';

/** A DECIMAL parameter: the text the text protocol writes for a non-integer number. */
export class DecimalText {
  /** @param text The number's `String()`, without an exponent. */
  constructor(readonly text: string) {}
}

/**
 * A parameter as the binary protocol carries it; its JavaScript form gives its SQL type: a safe
 * integer number → INT (or BIGINT past 32 bits), another number → DOUBLE, a bigint → BIGINT
 * (UNSIGNED past 2^63), {@link DecimalText} → DECIMAL, a string → VARCHAR, a Buffer → BLOB.
 */
export type BoundParam = null | string | number | bigint | Buffer | DecimalText;

const INT32_MIN = -2147483648;
const INT32_MAX = 2147483647;
const INT64_MIN = -(2n ** 63n);
const UINT64_LIMIT = 2n ** 64n;
const UNBOUND = Symbol('unbound');

/**
 * The parameters as the binary protocol should carry them, or `undefined` when one of them has no
 * binding that behaves like its text-protocol literal (the statement then runs as text).
 *
 * ```ts
 * bindParams([1, 'a', 1.5, true]); // [1, 'a', DecimalText('1.5'), 1]
 * bindParams([[1, 2]]);            // undefined: the text protocol expands an array into a list
 * ```
 */
export function bindParams(params: readonly unknown[]): BoundParam[] | undefined {
  const out = new Array<BoundParam>(params.length);
  for (let i = 0; i < params.length; i++) {
    const v = bindOne(params[i]);
    if (v === UNBOUND) return undefined;
    out[i] = v;
  }
  return out;
}

function bindOne(v: unknown): BoundParam | typeof UNBOUND {
  switch (typeof v) {
    case 'string':
      return v;
    case 'number': {
      if (Number.isSafeInteger(v)) return v === 0 ? 0 : v; // -0 is written '0'
      if (!Number.isFinite(v)) return UNBOUND;
      // The text protocol writes String(v): with an exponent a DOUBLE literal, without one a
      // DECIMAL, or past 2^53 an integer literal whose type depends on its size (left to text).
      const text = String(v);
      if (text.includes('e')) return v;
      return Number.isInteger(v) ? UNBOUND : new DecimalText(text);
    }
    case 'boolean':
      return v ? 1 : 0; // `true` / `false` are INT literals
    case 'bigint':
      return v >= INT64_MIN && v < UINT64_LIMIT ? v : UNBOUND;
    case 'undefined':
      return null; // written as NULL by the text protocol
    case 'object':
      if (v === null || Buffer.isBuffer(v)) return v;
      if (v instanceof Date) {
        // The text protocol's string literal of the date (in the connection's time zone, UTC), or NULL.
        const lit = mysql.escape(v, true, MYSQL_TYPE_OPTIONS.timezone as 'Z');
        return lit === 'NULL' ? null : lit.slice(1, -1);
      }
      // A Buffer that crossed a MessagePort arrives as a Uint8Array: bind the same bytes.
      if (v instanceof Uint8Array && Object.getPrototypeOf(v) === Uint8Array.prototype) return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
      return UNBOUND;
    default:
      return UNBOUND;
  }
}

// Parameter type codes (mysql_com.h enum_field_types) and flags of COM_STMT_EXECUTE.
const P_LONG = 3;
const P_DOUBLE = 5;
const P_NULL = 6;
const P_LONGLONG = 8;
const P_NEWDECIMAL = 246;
const P_BLOB = 252;
const P_VAR_STRING = 253;
const UNSIGNED_FLAG = 0x80;
const COM_STMT_EXECUTE = 0x17;
const PARAMETER_COUNT_AVAILABLE = 0x08;

function lenencSize(n: number): number {
  return n < 251 ? 1 : n < 0x10000 ? 3 : n < 0x1000000 ? 4 : 9;
}

function writeLenenc(buf: Buffer, o: number, n: number): number {
  if (n < 251) {
    buf[o] = n;
    return o + 1;
  }
  if (n < 0x10000) {
    buf[o] = 0xfc;
    buf.writeUInt16LE(n, o + 1);
    return o + 3;
  }
  if (n < 0x1000000) {
    buf[o] = 0xfd;
    buf.writeUIntLE(n, o + 1, 3);
    return o + 4;
  }
  buf[o] = 0xfe;
  buf.writeBigUInt64LE(BigInt(n), o + 1);
  return o + 9;
}

/**
 * The COM_STMT_EXECUTE packet (with room for its 4-byte header) of statement `id` with `values`,
 * strings in UTF-8. mysql2's own encoder copies an options object per typed parameter, which
 * costs microseconds per INT on Node 20; the layout here is the same as mysql2 writes.
 */
export function encodeExecute(id: number, values: readonly BoundParam[], queryAttributes: boolean): Buffer {
  const n = values.length;
  const sizes = new Array<number>(n);
  let size = 4 + 1 + 4 + 1 + 4 + (queryAttributes ? lenencSize(n) : 0);
  if (n > 0) size += ((n + 7) >> 3) + 1 + n * (queryAttributes ? 3 : 2);
  for (let i = 0; i < n; i++) {
    const v = values[i];
    let len: number;
    if (v === null) len = 0;
    else if (typeof v === 'string') len = Buffer.byteLength(v, 'utf8');
    else if (typeof v === 'number') len = Number.isSafeInteger(v) && v >= INT32_MIN && v <= INT32_MAX ? 4 : 8;
    else if (typeof v === 'bigint') len = 8;
    else if (v instanceof DecimalText) len = v.text.length;
    else len = v.length;
    sizes[i] = len;
    size += typeof v === 'string' || Buffer.isBuffer(v) || v instanceof DecimalText ? lenencSize(len) + len : len;
  }
  const buf = Buffer.allocUnsafe(size);
  let o = 4;
  buf[o++] = COM_STMT_EXECUTE;
  buf.writeUInt32LE(id, o);
  o += 4;
  buf[o++] = queryAttributes ? PARAMETER_COUNT_AVAILABLE : 0;
  buf.writeUInt32LE(1, o); // iteration count
  o += 4;
  if (queryAttributes) o = writeLenenc(buf, o, n);
  if (n === 0) return buf;
  const bitmap = o;
  buf.fill(0, bitmap, bitmap + ((n + 7) >> 3));
  o += (n + 7) >> 3;
  buf[o++] = 1; // new parameters bound
  for (let i = 0; i < n; i++) {
    const v = values[i];
    let type: number;
    let flags = 0;
    if (v === null) {
      type = P_NULL;
      buf[bitmap + (i >> 3)] |= 1 << (i & 7);
    } else if (typeof v === 'string') type = P_VAR_STRING;
    else if (typeof v === 'number') type = sizes[i] === 4 ? P_LONG : Number.isSafeInteger(v) ? P_LONGLONG : P_DOUBLE;
    else if (typeof v === 'bigint') {
      type = P_LONGLONG;
      if (v > -INT64_MIN - 1n) flags = UNSIGNED_FLAG;
    } else if (v instanceof DecimalText) type = P_NEWDECIMAL;
    else type = P_BLOB;
    buf[o++] = type;
    buf[o++] = flags;
    if (queryAttributes) buf[o++] = 0; // a bind parameter has an empty name
  }
  for (let i = 0; i < n; i++) {
    const v = values[i];
    if (v === null) continue;
    const len = sizes[i];
    if (typeof v === 'string') {
      o = writeLenenc(buf, o, len);
      o += buf.write(v, o, len, 'utf8');
    } else if (typeof v === 'number') {
      if (len === 4) buf.writeInt32LE(v, o);
      else if (Number.isSafeInteger(v)) buf.writeBigInt64LE(BigInt(v), o);
      else buf.writeDoubleLE(v, o);
      o += len;
    } else if (typeof v === 'bigint') {
      if (v < 0n) buf.writeBigInt64LE(v, o);
      else buf.writeBigUInt64LE(v, o);
      o += 8;
    } else if (v instanceof DecimalText) {
      o = writeLenenc(buf, o, len);
      o += buf.write(v.text, o, len, 'latin1');
    } else {
      o = writeLenenc(buf, o, len);
      o += v.copy(buf, o);
    }
  }
  return buf;
}

/**
 * A bound parameter as mysql2's public `execute` takes it (the path without its internals).
 *
 * ```ts
 * toMysql2(5); // mysql.TypedParameter.LONG(5)
 * ```
 */
export function toMysql2(v: BoundParam): unknown {
  const typed = mysql.TypedParameter;
  if (typeof v === 'number') return !Number.isSafeInteger(v) ? v : v >= INT32_MIN && v <= INT32_MAX ? typed.LONG(v) : typed.LONGLONG(v);
  if (typeof v === 'bigint') return v > -INT64_MIN - 1n ? typed.LONGLONG.unsigned(v) : typed.LONGLONG(v);
  if (v instanceof DecimalText) return typed.NEWDECIMAL(v.text);
  return v;
}
