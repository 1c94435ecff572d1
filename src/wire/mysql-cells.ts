/**
 * Cell decoders of the MySQL wire codec (mysql-wire.ts): for each column, chosen once per result
 * set, the function that turns the bytes of one cell into exactly the value the driver's mysql2
 * path gives for it (mysql2's row parsers with MYSQL_TYPE_OPTIONS, then `binaryRowsToText` and
 * `normalizeRows`). Every decoder takes the cell's value bytes `b[s, e)` and its column, and
 * allocates nothing but the value itself.
 * @module
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import mysql from 'mysql2';
import {
  NOT_FIXED_DEC, TYPE_DATE, TYPE_DATETIME, TYPE_DOUBLE, TYPE_FLOAT, TYPE_TIME, TYPE_TIMESTAMP,
  doubleAsText, floatAsText, readDateTimeAsText, readDateTimeString, realFixedAsText, timeAsText,
} from './mysql-binary-rows.js';
import type { PacketReader } from './mysql-binary-rows.js';

/** A Buffer with Node's encoding-specific slicers (what `toString` calls, without its dispatch). */
export interface Bytes extends Buffer {
  utf8Slice(start: number, end: number): string;
  asciiSlice(start: number, end: number): string;
  latin1Slice(start: number, end: number): string;
}

/** What a decoder needs of a column definition. */
export interface Column {
  readonly name: string;
  readonly type: number;
  readonly flags: number;
  /** Character set number; 63 is binary. */
  readonly charset: number;
  /** mysql2's encoding name of `charset` (`CharsetToEncoding`). */
  readonly encoding: string;
  readonly length: number;
  readonly decimals: number;
  /** MariaDB's extended metadata says the column holds JSON (its JSON is LONGTEXT on the wire). */
  readonly json: boolean;
}

/** Decodes the value bytes `b[s, e)` of one non-NULL cell of `col`. */
export type Cell = (b: Bytes, s: number, e: number, col: Column) => unknown;

// Column type codes (mysql_com.h enum_field_types) not exported by mysql-binary-rows.ts.
const TYPE_DECIMAL = 0;
const TYPE_TINY = 1;
const TYPE_SHORT = 2;
const TYPE_LONG = 3;
const TYPE_NULL = 6;
const TYPE_LONGLONG = 8;
const TYPE_INT24 = 9;
const TYPE_YEAR = 13;
const TYPE_NEWDATE = 14;
const TYPE_VECTOR = 242;
const TYPE_JSON = 245;
const TYPE_NEWDECIMAL = 246;
const TYPE_GEOMETRY = 255;
const UNSIGNED_FLAG = 0x20;
const BINARY_CHARSET = 63;

/** The parts of mysql2's Packet the decoders borrow: its TIME and geometry readers. */
interface Mysql2Packet extends PacketReader {
  buffer: Bytes;
  readTimeString(): string;
  parseGeometryValue(this: { readLengthCodedBuffer(): Buffer }): unknown;
}

const require = createRequire(import.meta.url);
const lib = path.join(path.dirname(require.resolve('mysql2')), 'lib');
const Packet = require(path.join(lib, 'packets/packet.js')) as { new (id: number, b: Buffer, start: number, end: number): Mysql2Packet; prototype: Mysql2Packet };
const StringParser = require(path.join(lib, 'parsers/string.js')) as { decode(b: Buffer, encoding: string, start: number, end: number): string };

/** mysql2's error names by errno (`err.code` of a server error). */
export const ERROR_NAMES = require(path.join(lib, 'constants/errors.js')) as Record<number, string | undefined>;

/** mysql2's encoding names by character set number. */
export const CHARSET_ENCODINGS = mysql.CharsetToEncoding as readonly (string | undefined)[];

/** Text in mysql2's encoding `encoding`, decoded as mysql2 decodes it (iconv-lite beyond Node's own encodings). */
export function decodeText(b: Bytes, encoding: string, s: number, e: number): string {
  return encoding === 'utf8' ? b.utf8Slice(s, e) : StringParser.decode(b, encoding, s, e);
}

/** One reader for the date and time readers that take a packet (`this`): pointed at a cell's length byte. */
const EMPTY = Buffer.alloc(4) as Bytes;
const reader = new Packet(0, EMPTY, 0, 4);

function at(b: Bytes, lengthByte: number): Mysql2Packet {
  reader.buffer = b;
  reader.offset = lengthByte;
  return reader;
}

/** `v`, once the reader no longer holds the answer's bytes. */
function release<T>(v: T): T {
  reader.buffer = EMPTY;
  return v;
}

/** The cell handed to mysql2's geometry reader (it reads its bytes through `readLengthCodedBuffer`). */
const NO_CELL: Buffer = Buffer.alloc(0);
const geometry = {
  cell: NO_CELL,
  readLengthCodedBuffer(): Buffer {
    return this.cell;
  },
};

// ---- cells of both protocols -----------------------------------------------------------------

/**
 * A value of up to 8 ASCII bytes as a string without a call into C++ (which costs more than the
 * decoding), as mysql2 does; `undefined` when longer or not ASCII.
 */
function shortAscii(b: Bytes, s: number, e: number): string | undefined {
  switch (e - s) {
    case 0:
      return '';
    case 1:
      return b[s] < 128 ? String.fromCharCode(b[s]) : undefined;
    case 2:
      return (b[s] | b[s + 1]) < 128 ? String.fromCharCode(b[s], b[s + 1]) : undefined;
    case 3:
      return (b[s] | b[s + 1] | b[s + 2]) < 128 ? String.fromCharCode(b[s], b[s + 1], b[s + 2]) : undefined;
    case 4:
      return (b[s] | b[s + 1] | b[s + 2] | b[s + 3]) < 128 ? String.fromCharCode(b[s], b[s + 1], b[s + 2], b[s + 3]) : undefined;
    case 5:
      return (b[s] | b[s + 1] | b[s + 2] | b[s + 3] | b[s + 4]) < 128 ? String.fromCharCode(b[s], b[s + 1], b[s + 2], b[s + 3], b[s + 4]) : undefined;
    case 6:
      return (b[s] | b[s + 1] | b[s + 2] | b[s + 3] | b[s + 4] | b[s + 5]) < 128
        ? String.fromCharCode(b[s], b[s + 1], b[s + 2], b[s + 3], b[s + 4], b[s + 5]) : undefined;
    case 7:
      return (b[s] | b[s + 1] | b[s + 2] | b[s + 3] | b[s + 4] | b[s + 5] | b[s + 6]) < 128
        ? String.fromCharCode(b[s], b[s + 1], b[s + 2], b[s + 3], b[s + 4], b[s + 5], b[s + 6]) : undefined;
    case 8:
      return (b[s] | b[s + 1] | b[s + 2] | b[s + 3] | b[s + 4] | b[s + 5] | b[s + 6] | b[s + 7]) < 128
        ? String.fromCharCode(b[s], b[s + 1], b[s + 2], b[s + 3], b[s + 4], b[s + 5], b[s + 6], b[s + 7]) : undefined;
    default:
      return undefined;
  }
}

const utf8: Cell = (b, s, e) => shortAscii(b, s, e) ?? b.utf8Slice(s, e);
const ascii: Cell = (b, s, e) => shortAscii(b, s, e) ?? b.asciiSlice(s, e);
const encoded: Cell = (b, s, e, col) => StringParser.decode(b, col.encoding, s, e);

/** Binary strings and BIT: a Buffer of their own (not a view into the answer or a pool slab). */
const bytes: Cell = (b, s, e) => {
  const out = Buffer.allocUnsafeSlow(e - s);
  b.copy(out, 0, s, e);
  return out;
};

/** GEOMETRY: mysql2's reader of the WKB value (`{x, y}` for a point, arrays for the others). */
const geometryCell: Cell = (b, s, e) => {
  geometry.cell = b.subarray(s, e);
  try {
    return Packet.prototype.parseGeometryValue.call(geometry);
  } finally {
    geometry.cell = NO_CELL;
  }
};

/** VECTOR (MySQL 9, MariaDB 11.7): float32 values, as mysql2's Packet#parseVector. */
const vector: Cell = (b, s, e) => {
  const out: number[] = [];
  for (let o = s; o + 4 <= e; o += 4) out.push(b.readFloatLE(o));
  return out;
};

const nullCell: Cell = () => null;

/** A string column of either protocol: a Buffer for the binary charset, else text in the column's encoding. */
function stringCell(col: Column): Cell {
  if (col.json) return col.encoding === 'utf8' ? utf8 : encoded;
  if (col.charset === BINARY_CHARSET) return bytes;
  return col.encoding === 'utf8' ? utf8 : encoded;
}

// ---- text protocol -------------------------------------------------------------------------

/** mysql2's Packet#parseIntNoBigCheck: TINYINT … INT, YEAR. */
function int(b: Bytes, s: number, e: number): number {
  if (s === e) return 0;
  let sign = 1;
  if (b[s] === 45) {
    s++;
    sign = -1;
  }
  if (b[s] === 43) s++;
  let n = 0;
  for (; s < e; s++) n = n * 10 + (b[s] - 48);
  return n * sign;
}

const textInt: Cell = (b, s, e) => int(b, s, e);
const textBool: Cell = (b, s, e) => int(b, s, e) !== 0;

/** BIGINT: mysql2's Packet#parseInt with supportBigNumbers, then `normalizeRows` (a bigint past 2^53). */
const textBigInt: Cell = (b, s, e) => {
  if (s === e) return 0;
  let sign = 1;
  if (b[s] === 45) {
    s++;
    sign = -1;
  }
  if (e - s >= 15) {
    const digits = b.latin1Slice(s, e);
    const n = sign * parseInt(digits, 10);
    return Number.isSafeInteger(n) ? n : BigInt(sign === -1 ? `-${digits}` : digits);
  }
  if (b[s] === 43) s++;
  let n = 0;
  for (; s < e; s++) n = n * 10 + (b[s] - 48);
  return n * sign;
};

/** FLOAT, DOUBLE: mysql2's Packet#parseFloat of the server's text. */
const textReal: Cell = (b, s, e) => {
  const len = e - s;
  if (len === 0) return 0;
  if (len > 17) return Number.parseFloat(b.utf8Slice(s, e));
  let n = 0;
  let factor = 1;
  let pastDot = false;
  let i = s;
  if (b[i] === 45) {
    i++;
    factor = -1;
  }
  if (b[i] === 43) i++;
  for (; i < e; i++) {
    const ch = b[i];
    if (ch === 46) pastDot = true;
    else if (ch === 101 || ch === 69) return Number.parseFloat(b.utf8Slice(s, e));
    else {
      n = n * 10 + (ch - 48);
      if (pastDot) factor *= 10;
    }
  }
  return n / factor;
};

const digit2 = (b: Bytes, o: number): number => (b[o] - 48) * 10 + (b[o + 1] - 48);

/** DATETIME, TIMESTAMP: mysql2's Packet#parseDateTime with `timezone: 'Z'`. */
const textDateTime: Cell = (b, s, e) => {
  if (e - s >= 19 && b[s + 4] === 45 && b[s + 7] === 45 && b[s + 13] === 58 && b[s + 16] === 58) {
    const y = digit2(b, s) * 100 + digit2(b, s + 2);
    const mo = digit2(b, s + 5);
    const d = digit2(b, s + 8);
    if (mo === 0 || d === 0 || mo > 12 || d > 31) return new Date(NaN);
    if (y < 100) return new Date(`${b.latin1Slice(s, e)}Z`);
    let ms = 0;
    let scale = 100;
    for (let i = s + 20; i < e && scale >= 1; i++) {
      ms += (b[i] - 48) * scale;
      scale /= 10;
    }
    return new Date(Date.UTC(y, mo - 1, d, digit2(b, s + 11), digit2(b, s + 14), digit2(b, s + 17), ms));
  }
  return new Date(`${b.latin1Slice(s, e)}Z`);
};

/**
 * The decoder of a text-protocol cell of `col` (COM_QUERY rows).
 *
 * ```ts
 * textCell(col)(b, s, e, col); // '12' of an INT -> 12, of a TINYINT(1) -> true
 * ```
 */
export function textCell(col: Column): Cell {
  if (col.json) return stringCell(col);
  switch (col.type) {
    case TYPE_TINY:
      return col.length === 1 ? textBool : textInt;
    case TYPE_SHORT:
    case TYPE_LONG:
    case TYPE_INT24:
    case TYPE_YEAR:
      return textInt;
    case TYPE_LONGLONG:
      return textBigInt;
    case TYPE_FLOAT:
    case TYPE_DOUBLE:
      return textReal;
    case TYPE_NULL:
      return nullCell;
    case TYPE_DECIMAL:
    case TYPE_NEWDECIMAL:
    case TYPE_DATE:
    case TYPE_TIME:
      return ascii;
    case TYPE_DATETIME:
    case TYPE_TIMESTAMP:
      return textDateTime;
    case TYPE_GEOMETRY:
      return geometryCell;
    case TYPE_VECTOR:
      return vector;
    case TYPE_JSON:
      return utf8;
    default:
      return stringCell(col);
  }
}

// ---- binary protocol -----------------------------------------------------------------------

const binTiny: Cell = (b, s) => (b[s] << 24) >> 24;
const binUTiny: Cell = (b, s) => b[s];
const binBool: Cell = (b, s) => b[s] !== 0;
const binShort: Cell = (b, s) => b.readInt16LE(s);
const binUShort: Cell = (b, s) => b.readUInt16LE(s);
const binLong: Cell = (b, s) => b.readInt32LE(s);
const binULong: Cell = (b, s) => b.readUInt32LE(s);

/** BIGINT: a number when within ±(2^53 − 1), else a bigint (mysql2's readSInt64 + `normalizeRows`). */
const binLongLong: Cell = (b, s) => {
  const n = b.readUInt32LE(s) + 0x100000000 * b.readInt32LE(s + 4);
  return Number.isSafeInteger(n) ? n : b.readBigInt64LE(s);
};
const binULongLong: Cell = (b, s) => {
  const n = b.readUInt32LE(s) + 0x100000000 * b.readUInt32LE(s + 4);
  return Number.isSafeInteger(n) ? n : b.readBigUInt64LE(s);
};

const binFloat: Cell = (b, s) => floatAsText(b.readFloatLE(s));
const binFloatFixed: Cell = (b, s, _e, col) => realFixedAsText(b.readFloatLE(s), col.decimals);
const binDouble: Cell = (b, s) => doubleAsText(b.readDoubleLE(s));
const binDoubleFixed: Cell = (b, s, _e, col) => realFixedAsText(b.readDoubleLE(s), col.decimals);

// Date and time cells start with their length byte (always below 251), just before `s`.
const binDate: Cell = (b, s, _e, col) => release(readDateTimeString.call(at(b, s - 1), col.decimals, null, col.type));
const binDateTime: Cell = (b, s) => release(readDateTimeAsText.call(at(b, s - 1)));
const binTime: Cell = (b, s) => release(at(b, s - 1).readTimeString());
const binTimeFraction: Cell = (b, s, _e, col) => timeAsText(release(at(b, s - 1).readTimeString()), col.decimals);

/** Byte size of a fixed-size binary cell of `type`: 0 for one with a length prefix, -1 for one without bytes. */
export function binarySize(col: Column): number {
  if (col.json) return 0;
  switch (col.type) {
    case TYPE_TINY:
      return 1;
    case TYPE_SHORT:
    case TYPE_YEAR:
      return 2;
    case TYPE_LONG:
    case TYPE_INT24:
    case TYPE_FLOAT:
      return 4;
    case TYPE_LONGLONG:
    case TYPE_DOUBLE:
      return 8;
    case TYPE_NULL:
      return -1;
    default:
      return 0;
  }
}

/**
 * The decoder of a binary-protocol cell of `col` (COM_STMT_EXECUTE rows); fixed-size cells span
 * `binarySize(col)` bytes, the others are length-prefixed as text cells are.
 *
 * ```ts
 * binaryCell(col)(b, s, s + 8, col); // a DOUBLE 0.30000000000000004 -> as the text protocol gives it
 * ```
 */
export function binaryCell(col: Column): Cell {
  if (col.json) return stringCell(col);
  const unsigned = (col.flags & UNSIGNED_FLAG) !== 0;
  const fixed = col.decimals < NOT_FIXED_DEC;
  switch (col.type) {
    case TYPE_TINY:
      if (col.length === 1) return binBool;
      return unsigned ? binUTiny : binTiny;
    case TYPE_SHORT:
      return unsigned ? binUShort : binShort;
    case TYPE_YEAR:
      return binUShort;
    case TYPE_LONG:
    case TYPE_INT24:
      return unsigned ? binULong : binLong;
    case TYPE_LONGLONG:
      return unsigned ? binULongLong : binLongLong;
    case TYPE_FLOAT:
      return fixed ? binFloatFixed : binFloat;
    case TYPE_DOUBLE:
      return fixed ? binDoubleFixed : binDouble;
    case TYPE_NULL:
      return nullCell;
    case TYPE_DATE:
      return binDate;
    case TYPE_DATETIME:
    case TYPE_TIMESTAMP:
    case TYPE_NEWDATE: // never on the wire; mysql2 reads it as a DATETIME
      return binDateTime;
    case TYPE_TIME:
      return col.decimals > 0 && col.decimals <= 6 ? binTimeFraction : binTime;
    case TYPE_DECIMAL:
    case TYPE_NEWDECIMAL:
      return ascii;
    case TYPE_GEOMETRY:
      return geometryCell;
    case TYPE_VECTOR:
      return vector;
    case TYPE_JSON:
      return utf8;
    default:
      return stringCell(col);
  }
}
