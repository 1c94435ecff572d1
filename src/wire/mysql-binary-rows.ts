/**
 * Result values of the binary protocol made identical to the text protocol's (issue 8). mysql2's
 * binary parser decodes a few types differently from its text parser; those cells are read or
 * converted to what the text protocol gives:
 *
 * - FLOAT/DOUBLE: the server's decimal text of the value as mysql2's text parser reads it back;
 * - DATETIME/TIMESTAMP: years below 100 and zero months or days as the text parser reads them
 *   (read from the packet by {@link readDateTimeAsText}, or converted from text by
 *   {@link binaryRowsToText} when mysql2 was asked for DATETIME as text);
 * - DATE: the same `'YYYY-MM-DD'` text, written without mysql2's array joins;
 * - TIME: the fraction padded to the column's decimals.
 * @module
 */

/** The structural subset of a mysql2 column definition we read. */
export interface ColumnDef {
  columnType?: number;
  decimals?: number;
}

// Column type codes of the protocol (mysql_com.h enum_field_types).
/** FLOAT column type code. */
export const TYPE_FLOAT = 4;
/** DOUBLE column type code. */
export const TYPE_DOUBLE = 5;
/** TIMESTAMP column type code. */
export const TYPE_TIMESTAMP = 7;
/** DATE column type code. */
export const TYPE_DATE = 10;
/** TIME column type code. */
export const TYPE_TIME = 11;
/** DATETIME column type code. */
export const TYPE_DATETIME = 12;
/** Decimals at or above this mean "not fixed" for FLOAT/DOUBLE (FLOATING_POINT_DECIMALS). */
export const NOT_FIXED_DEC = 31;

/**
 * Converts, in place, the values of a binary-protocol result that mysql2 decodes differently
 * from the text protocol into the text protocol's values. Touches only FLOAT, DOUBLE, DATETIME,
 * TIMESTAMP (when read as text) and TIME columns; `normalizeRows` then does what both protocols need.
 *
 * ```ts
 * binaryRowsToText(rows, fields); // FLOAT 1.100000023841858 -> 1.1, '2024-01-02 03:04:05' -> Date
 * ```
 */
export function binaryRowsToText(rows: unknown[][], fields: readonly ColumnDef[]): void {
  if (rows.length === 0) return;
  for (let c = 0; c < fields.length; c++) {
    const type = fields[c].columnType;
    const decimals = fields[c].decimals ?? NOT_FIXED_DEC;
    let convert: ((v: never, decimals: number) => unknown) | undefined;
    if (type === TYPE_DOUBLE) convert = decimals >= NOT_FIXED_DEC ? doubleAsText : realFixedAsText;
    else if (type === TYPE_FLOAT) convert = decimals >= NOT_FIXED_DEC ? floatAsText : realFixedAsText;
    else if (type === TYPE_DATETIME || type === TYPE_TIMESTAMP) convert = dateTimeAsText;
    else if (type === TYPE_TIME && decimals > 0 && decimals <= 6) convert = timeAsText;
    if (convert === undefined) continue;
    const kind = type === TYPE_DATETIME || type === TYPE_TIMESTAMP || type === TYPE_TIME ? 'string' : 'number';
    for (const row of rows) {
      const v = row[c];
      if (typeof v === kind) row[c] = convert(v as never, decimals);
    }
  }
}

// ---- FLOAT / DOUBLE -------------------------------------------------------------------------
//
// The server writes a real number as text (my_gcvt: shortest digits for DOUBLE, 6 significant
// digits for FLOAT, 'e' notation outside 1e-15 .. 1e15; my_fcvt: exactly `decimals` digits, both
// rounding half to even), and mysql2 reads that text back with its own parser, which is exact
// except for 16-17 digit numbers. The binary protocol gives the stored value itself.

/** mysql2's text-protocol parser of FLOAT/DOUBLE/DECIMAL text (Packet#parseFloat), on a string. */
export function mysql2ParseFloat(s: string): number {
  const len = s.length;
  if (len === 0) return 0;
  if (len > 17) return Number.parseFloat(s);
  let result = 0;
  let factor = 1;
  let pastDot = false;
  let i = 0;
  if (s.charCodeAt(i) === 45) {
    i++;
    factor = -1;
  }
  if (s.charCodeAt(i) === 43) i++;
  for (; i < len; i++) {
    const ch = s.charCodeAt(i);
    if (ch === 46) pastDot = true;
    else if (ch === 101 || ch === 69) return Number.parseFloat(s);
    else {
      result *= 10;
      result += ch - 48;
      if (pastDot) factor *= 10;
    }
  }
  return result / factor;
}

/** For k = 0..14, a bound just below 2^53·10^(k-15): 16-digit texts of values above it have digits past 2^53. */
const INEXACT_FROM = Array.from({ length: 15 }, (_, k) => (2 ** 53 / 10 ** (15 - k)) * (1 - 1e-12));

/**
 * A DOUBLE (decimals not fixed) as the text protocol gives it. The server's text holds the
 * shortest digits that read back as the value; mysql2's parser reads it back exactly unless the
 * text is 17 characters of plain notation whose digits exceed 2^53 (a positive non-integer in
 * [9.007…e k, 10^(k+1)) with 16 significant digits), so only those are parsed again.
 */
export function doubleAsText(v: number): number {
  if (!(v >= INEXACT_FROM[0]) || v >= 1e15 || Number.isInteger(v)) return v;
  let k = 0;
  while (k < 14 && v >= 10 ** (k + 1)) k++;
  if (v < INEXACT_FROM[k]) return v;
  const s = String(v);
  return s.length === 17 ? mysql2ParseFloat(s) : v;
}

/** A FLOAT (decimals not fixed): 6 significant digits, rounded half to even. */
export function floatAsText(v: number): number {
  if (v === 0 || !Number.isFinite(v)) return v; // -0 reads back as -0 ('-0')
  let s = Math.abs(v).toExponential(5); // d.ddddde±x, rounded half up
  const at = s.indexOf('e');
  const exp = Number(s.slice(at + 1));
  // toExponential rounds a tie up; the server rounds it to even.
  if (isTie(Math.abs(v), 5 - exp) && (s.charCodeAt(at - 1) & 1) === 1) s = decrementLastDigit(s, at);
  const out = Number(s);
  return v < 0 ? -out : out;
}

/** A FLOAT or DOUBLE with fixed decimals (FLOAT(M,D), DOUBLE(M,D), ROUND results). */
export function realFixedAsText(v: number, decimals: number): number {
  if (!Number.isFinite(v)) return v;
  const a = Math.abs(v);
  if (a >= 1e21) return v; // more than 17 characters: read back exactly
  let s = a.toFixed(decimals); // rounds a tie up; the server rounds it to even
  if (isTie(a, decimals) && (s.charCodeAt(s.length - 1) & 1) === 1) s = decrementLastDigit(s, s.length);
  // The server writes the sign of any negative value, also one that rounds to zero (and of -0).
  return mysql2ParseFloat(v < 0 || Object.is(v, -0) ? `-${s}` : s);
}

const scratch = new DataView(new ArrayBuffer(8));

/**
 * True when `a` (finite, ≥ 0) lies exactly halfway between two multiples of 10^-digits, i.e.
 * a·10^digits·2 is an odd integer. With a = m·2^e (m odd), that holds iff e = -(digits + 1)
 * and, for digits < 0, 5^-digits divides m.
 */
function isTie(a: number, digits: number): boolean {
  if (a === 0) return false;
  scratch.setFloat64(0, a);
  const hi = scratch.getUint32(0);
  const lo = scratch.getUint32(4);
  const biased = hi >>> 20;
  let m = (hi & 0xfffff) * 2 ** 32 + lo;
  let e: number;
  if (biased === 0) e = -1074;
  else {
    m += 2 ** 52;
    e = biased - 1075;
  }
  while (m % 2 === 0) {
    m /= 2;
    e++;
  }
  if (e !== -(digits + 1)) return false;
  if (digits >= 0) return true;
  const p = 5 ** -digits;
  return p <= 2 ** 53 && m % p === 0;
}

/** `s` with the digit before index `end` lowered by one (it is odd, so it never borrows). */
function decrementLastDigit(s: string, end: number): string {
  return s.slice(0, end - 1) + String.fromCharCode(s.charCodeAt(end - 1) - 1) + s.slice(end);
}

// ---- DATETIME / TIMESTAMP / DATE / TIME -----------------------------------------------------
//
// mysql2's binary reader turns DATETIME bytes into a Date with Date.UTC, which maps years below
// 100 to 19xx and rolls a zero month or day into the previous one; the text reader gives an
// invalid Date for a zero month or day and parses years below 100 with the Date string parser.
// The bytes are gone once the Date is built, so the cells are read by the readers below, which
// mysql-execute.ts puts on the packet of each row in place of mysql2's.

/** The structural subset of mysql2's packet reader our date readers use. */
export interface PacketReader {
  buffer: Uint8Array;
  offset: number;
  readInt8(): number;
  readInt16(): number;
  readInt32(): number;
  readDateTime?: unknown;
  readDateTimeString?: unknown;
}

const TWO_DIGITS = Array.from({ length: 100 }, (_, i) => (i < 10 ? `0${i}` : String(i)));
const ZEROS = '000000';

/** mysql2's leftPad: `value` as text, padded with zeros to `width`. */
function pad(width: number, value: number): string {
  if (width === 2 && value < 100) return TWO_DIGITS[value];
  const s = String(value);
  return s.length >= width ? s : (ZEROS + s).slice(-width);
}

/** A binary DATETIME/TIMESTAMP as the text protocol reads the server's text of it with `timezone: 'Z'` (see dateTimeAsText). */
export function readDateTimeAsText(this: PacketReader): Date {
  // Read straight from the packet's buffer: this runs for every DATETIME cell.
  const b = this.buffer;
  let o = this.offset;
  const length = b[o++];
  let y = 0;
  let mo = 0;
  let d = 0;
  let h = 0;
  let mi = 0;
  let s = 0;
  let us = 0;
  if (length > 3) {
    y = b[o] | (b[o + 1] << 8);
    mo = b[o + 2];
    d = b[o + 3];
    o += 4;
  }
  if (length > 6) {
    h = b[o];
    mi = b[o + 1];
    s = b[o + 2];
    o += 3;
  }
  if (length > 10) {
    us = (b[o] | (b[o + 1] << 8) | (b[o + 2] << 16)) + b[o + 3] * 0x1000000;
    o += 4;
  }
  this.offset = o;
  if (mo === 0 || d === 0 || mo > 12 || d > 31) return new Date(NaN);
  if (y < 100) {
    // The Date string parser ignores the number of fraction digits: six give the same Date.
    const frac = us === 0 ? '' : `.${pad(6, us)}`;
    return new Date(`${pad(4, y)}-${pad(2, mo)}-${pad(2, d)} ${pad(2, h)}:${pad(2, mi)}:${pad(2, s)}${frac}Z`);
  }
  // Date.UTC(y, mo - 1, d, h, mi, s, ms) for y ≥ 100, in integer arithmetic (a third faster).
  return new Date(daysFromCivil(y, mo, d) * 86400000 + ((h * 60 + mi) * 60 + s) * 1000 + ((us / 1000) | 0));
}

/** Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar (H. Hinnant's days_from_civil); d may pass the month's end. */
function daysFromCivil(y: number, m: number, d: number): number {
  const yy = m <= 2 ? y - 1 : y;
  const era = Math.floor(yy / 400);
  const yoe = yy - era * 400;
  const doy = (((153 * (m > 2 ? m - 3 : m + 9) + 2) / 5) | 0) + d - 1;
  return era * 146097 + yoe * 365 + ((yoe / 4) | 0) - ((yoe / 100) | 0) + doy - 719468;
}

/** mysql2's Packet#readDateTimeString (DATE cells, `dateStrings: ['DATE']`), without its array joins. */
export function readDateTimeString(this: PacketReader, decimals: number, timeSep: string | null, columnType: number | null): string {
  const length = this.readInt8();
  let str = '0000-00-00';
  if (length > 3) {
    const y = this.readInt16();
    const mo = this.readInt8();
    const d = this.readInt8();
    str = `${pad(4, y)}-${pad(2, mo)}-${pad(2, d)}`;
  }
  if (length > 6) {
    const h = this.readInt8();
    const mi = this.readInt8();
    const s = this.readInt8();
    str += `${timeSep || ' '}${pad(2, h)}:${pad(2, mi)}:${pad(2, s)}`;
  } else if (columnType === TYPE_DATETIME || columnType === TYPE_TIMESTAMP) {
    str += ' 00:00:00';
  }
  if (length > 10) {
    const us = this.readInt32();
    str += '.';
    if (decimals) {
      let frac = pad(6, us);
      if (frac.length > decimals) frac = frac.substring(0, decimals);
      str += frac;
    } else str += String(us);
  }
  return str;
}

/**
 * A DATETIME/TIMESTAMP text ('YYYY-MM-DD HH:MM:SS[.ffffff]') read the way mysql2's text parser
 * reads it with `timezone: 'Z'` (Packet#parseDateTime): a zero month or day is an invalid Date,
 * a year below 100 goes through the Date string parser, milliseconds are the first three digits.
 */
function dateTimeAsText(s: string): Date {
  const d = (i: number): number => s.charCodeAt(i) - 48;
  const y = d(0) * 1000 + d(1) * 100 + d(2) * 10 + d(3);
  const mo = d(5) * 10 + d(6);
  const day = d(8) * 10 + d(9);
  if (mo === 0 || day === 0 || mo > 12 || day > 31) return new Date(NaN);
  // The Date string parser ignores the number of fraction digits (the binary text drops a zero fraction).
  if (y < 100) return new Date(`${s}Z`);
  let ms = 0;
  if (s.length > 20) {
    let scale = 100;
    for (let i = 20; i < s.length && scale >= 1; i++) {
      ms += d(i) * scale;
      scale /= 10;
    }
  }
  return new Date(Date.UTC(y, mo - 1, day, d(11) * 10 + d(12), d(14) * 10 + d(15), d(17) * 10 + d(18), ms));
}

/** A TIME text with its fraction padded to the column's decimals, as the server writes it. */
export function timeAsText(s: string, decimals: number): string {
  const dot = s.indexOf('.');
  if (dot < 0) return `${s}.${'0'.repeat(decimals)}`;
  const have = s.length - dot - 1;
  return have < decimals ? s + '0'.repeat(decimals - have) : s;
}
