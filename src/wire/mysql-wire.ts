/**
 * MySQL/MariaDB protocol work done in the calling thread (issue 8), the counterpart of
 * pg-wire.ts: a statement is encoded here into a COM_QUERY or COM_STMT_EXECUTE packet, the broker
 * only writes it to a connection (filling in the packet header and the statement id) and frames
 * the server's answer by packet headers, and the answer's bytes are decoded here into exactly the
 * result the driver's mysql2 path gives (mysql-driver.ts `#result`, then `toReply`/`toResult`).
 *
 * The connection's capabilities are assumed to be those of the broker's mysql2 connections:
 * PROTOCOL_41, MULTI_RESULTS, SESSION_TRACK, no CLIENT_DEPRECATE_EOF (an EOF packet ends the
 * column definitions and the rows), no query attributes, utf8mb4; MariaDB's extended column
 * metadata may or may not be present.
 * @module
 */
import { BrokerError } from '../errors.js';
import { mysqlError } from './mysql-error.js';
import { bindParams, encodeExecute } from './mysql-params.js';
import { CHARSET_ENCODINGS, ERROR_NAMES, binaryCell, binarySize, decodeText, textCell } from './mysql-cells.js';
import type { Bytes, Cell, Column } from './mysql-cells.js';

const COM_QUERY = 0x03;
const MAX_PAYLOAD = 0xffffff;
const SERVER_MORE_RESULTS_EXISTS = 0x0008;
const OK = 0x00;
const EOF = 0xfe;
const ERR = 0xff;
const NULL_CELL = 0xfb;

/**
 * A COM_QUERY packet: 4 header bytes left zero for the broker (payload length, sequence id),
 * 0x03, the SQL in UTF-8; with its own exact-size ArrayBuffer. An SQL text of 16 MiB or more
 * needs splitting into continuation packets by whoever writes the header.
 *
 * ```ts
 * encodeQuery('select 1'); // Uint8Array [0, 0, 0, 0, 3, 0x73, …]
 * ```
 */
export function encodeQuery(sql: string): Uint8Array {
  const len = Buffer.byteLength(sql, 'utf8');
  const out = Buffer.from(new ArrayBuffer(5 + len));
  out[4] = COM_QUERY;
  out.write(sql, 5, len, 'utf8');
  return new Uint8Array(out.buffer);
}

/**
 * A COM_STMT_EXECUTE packet of `params` bound as the driver binds them (mysql-params.ts), or
 * `undefined` when one of them has no binary binding (the statement then runs as text, as on the
 * driver's path). The 4 header bytes are zero and so is the statement id (buffer offset 5–8,
 * little-endian): the broker fills both in. `n` is the number of parameters, for the broker to
 * check against the prepared statement's placeholders (the driver runs a mismatch as text).
 *
 * ```ts
 * encodeExecuteRequest([1, 'a']); // { m: Uint8Array [0,0,0,0, 0x17, 0,0,0,0, …], n: 2 }
 * encodeExecuteRequest([[1, 2]]); // undefined: an array is expanded by the text protocol
 * ```
 */
export function encodeExecuteRequest(params: readonly unknown[]): { m: Uint8Array; n: number } | undefined {
  const bound = bindParams(params);
  if (bound === undefined) return undefined;
  const packet = encodeExecute(0, bound, false);
  return { m: new Uint8Array(packet), n: bound.length };
}

/** A decoded answer: the rows as the user gets them, keyed by column name. */
export interface DecodedMysqlResult {
  fields: string[];
  rows: Record<string, unknown>[];
  /** Rows returned, or rows affected (an OK packet). */
  rowCount: number;
  /** The OK packet's last insert id, when not 0: a number, or a bigint beyond ±(2^53 − 1). */
  insertId?: number | bigint;
}

/** Thrown inside the decoder for bytes that are not a well-formed answer. */
class Malformed extends Error {}

/**
 * Decodes the broker's forwarded answer to one COM_QUERY (`binary` false) or COM_STMT_EXECUTE
 * (`binary` true) into what the driver's path gives the user: the last result of the answer
 * (a final OK packet wins over earlier result sets, as a CALL's does), or the `BrokerError` of an
 * ERR packet, built as `mysqlError` builds it from mysql2's error.
 *
 * Bytes that are not a well-formed answer (truncated, trailing bytes, a cell running past its
 * packet, an unknown packet where another is due) give a `DATABASE_ERROR` whose message starts
 * with "malformed MySQL answer"; the decoder never throws and never reads past `bytes`.
 *
 * ```ts
 * decodeAnswer(bytes, 'main', false); // { fields: ['x'], rows: [{ x: 1 }], rowCount: 1 }
 * ```
 */
export function decodeAnswer(bytes: Uint8Array, database: string, binary: boolean): DecodedMysqlResult | BrokerError {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength) as Bytes;
  try {
    return new Answer(b, binary).decode(database);
  } catch (err) {
    const why = err instanceof Malformed ? `malformed MySQL answer: ${err.message}` : (err as Error).message;
    return new BrokerError('DATABASE_ERROR', why, { database });
  }
}

/** One answer being walked: the current logical packet is `buf[s, e)` (a joined copy for 16 MiB continuations). */
class Answer {
  readonly #bytes: Bytes;
  readonly #binary: boolean;
  /** Offset of the next packet header in the answer. */
  #next = 0;
  /** Status word of the EOF packet that ended the last result set. */
  #status = 0;
  /** End of the cell whose start `#cellStart` gave. */
  #cellEnd = 0;
  buf: Bytes;
  s = 0;
  e = 0;

  constructor(bytes: Bytes, binary: boolean) {
    this.#bytes = bytes;
    this.#binary = binary;
    this.buf = bytes;
  }

  /** Steps to the next logical packet. */
  #packet(): void {
    const b = this.#bytes;
    let at = this.#next;
    const len = this.#payloadLength(at);
    if (len < MAX_PAYLOAD) {
      this.buf = b;
      this.s = at + 4;
      this.e = at + 4 + len;
      this.#next = this.e;
      return;
    }
    // A payload of 0xFFFFFF bytes continues in the next packet: join the pieces.
    const pieces: number[] = [];
    let total = 0;
    for (;;) {
      const n = this.#payloadLength(at);
      pieces.push(at + 4, n);
      total += n;
      at += 4 + n;
      if (n < MAX_PAYLOAD) break;
    }
    const joined = Buffer.allocUnsafeSlow(total) as Bytes;
    let o = 0;
    for (let i = 0; i < pieces.length; i += 2) o += b.copy(joined, o, pieces[i], pieces[i] + pieces[i + 1]);
    this.buf = joined;
    this.s = 0;
    this.e = total;
    this.#next = at;
  }

  #payloadLength(at: number): number {
    const b = this.#bytes;
    if (at + 4 > b.length) throw new Malformed(at === b.length ? 'the answer ends before its last packet' : `a packet header is cut at byte ${at}`);
    const len = b[at] | (b[at + 1] << 8) | (b[at + 2] << 16);
    if (at + 4 + len > b.length) throw new Malformed(`the packet at byte ${at} (${len} bytes) runs past the answer's end (${b.length} bytes)`);
    return len;
  }

  decode(database: string): DecodedMysqlResult | BrokerError {
    let result: DecodedMysqlResult;
    for (;;) {
      this.#packet();
      if (this.s === this.e) throw new Malformed('an empty packet where a result is due');
      const first = this.buf[this.s];
      if (first === ERR) return this.#error(database);
      let status: number;
      if (first === OK) {
        const ok = this.#ok();
        result = ok.result;
        status = ok.status;
      } else {
        const set = this.#resultSet(database);
        if (set instanceof BrokerError) return set;
        result = set;
        status = this.#status;
      }
      if ((status & SERVER_MORE_RESULTS_EXISTS) === 0) break;
    }
    if (this.#next !== this.#bytes.length) throw new Malformed(`${this.#bytes.length - this.#next} bytes follow the final result`);
    return result;
  }

  /** An OK packet: affected rows, last insert id, status; the info and session-state tail is ignored. */
  #ok(): { result: DecodedMysqlResult; status: number } {
    let o = this.s + 1;
    const affected = this.#lenenc(o);
    o += this.#lenencSize(o);
    const insertId = this.#insertId(o);
    o += this.#lenencSize(o);
    if (o + 2 > this.e) throw new Malformed('an OK packet without its status');
    const result: DecodedMysqlResult = { fields: [], rows: [], rowCount: affected };
    if (insertId !== 0) result.insertId = insertId;
    return { result, status: this.buf.readUInt16LE(o) };
  }

  /** mysql2 reads the insert id as a signed 64-bit integer: a number when safe, else (as `#result`) a bigint. */
  #insertId(o: number): number | bigint {
    const b = this.buf;
    if (b[o] !== 0xfe) return this.#lenenc(o);
    if (o + 9 > this.e) throw new Malformed('a length-encoded integer runs past its packet');
    const hi = b.readUInt32LE(o + 5);
    if (hi < 0x200000) return hi * 0x100000000 + b.readUInt32LE(o + 1);
    const v = b.readBigInt64LE(o + 1);
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  }

  /** A length-encoded integer at `o` of the current packet (as a number; NULL is refused). */
  #lenenc(o: number): number {
    const b = this.buf;
    if (o + this.#lenencSize(o) > this.e) throw new Malformed('a length-encoded integer runs past its packet');
    const t = b[o];
    if (t < 0xfb) return t;
    if (t === 0xfc) return b[o + 1] | (b[o + 2] << 8);
    if (t === 0xfd) return b[o + 1] | (b[o + 2] << 8) | (b[o + 3] << 16);
    return b.readUInt32LE(o + 1) + b.readUInt32LE(o + 5) * 0x100000000;
  }

  #lenencSize(o: number): number {
    if (o >= this.e) throw new Malformed('a length-encoded integer runs past its packet');
    const t = this.buf[o];
    if (t < 0xfb) return 1;
    if (t === 0xfc) return 3;
    if (t === 0xfd) return 4;
    if (t === 0xfe) return 9;
    throw new Malformed(`byte 0x${t.toString(16)} where a length-encoded integer is due`);
  }

  /** An ERR packet as mysql2's error of it, then as `mysqlError` turns that into a BrokerError. */
  #error(database: string): BrokerError {
    const b = this.buf;
    let o = this.s + 1;
    if (o + 2 > this.e) throw new Malformed('an ERR packet without its error number');
    const errno = b.readUInt16LE(o);
    o += 2;
    let sqlState = '';
    if (b[o] === 0x23 && o + 6 <= this.e) {
      sqlState = b.utf8Slice(o + 1, o + 6);
      o += 6;
    }
    const message = b.utf8Slice(o, this.e);
    return mysqlError(database, { message, code: ERROR_NAMES[errno], errno, sqlState, sqlMessage: message });
  }

  /** A result set: its column count (current packet), column definitions, EOF, rows, EOF. */
  #resultSet(database: string): DecodedMysqlResult | BrokerError {
    const count = this.#lenenc(this.s);
    if (count === 0 || this.s + this.#lenencSize(this.s) !== this.e) throw new Malformed('a packet that is neither OK, ERR nor a column count where a result is due');
    const columns: Column[] = [];
    const names: string[] = [];
    const cells: Cell[] = [];
    const sizes: number[] = [];
    for (let i = 0; i < count; i++) {
      this.#packet();
      if (this.buf[this.s] === ERR) return this.#error(database);
      const col = this.#column();
      columns.push(col);
      names.push(col.name);
      cells.push(this.#binary ? binaryCell(col) : textCell(col));
      sizes.push(binarySize(col));
    }
    this.#packet();
    if (this.buf[this.s] === ERR) return this.#error(database);
    if (!this.#isEof()) throw new Malformed('no EOF packet after the column definitions');
    const hostile = names.includes('__proto__');
    const rows: Record<string, unknown>[] = [];
    for (;;) {
      this.#packet();
      const first = this.buf[this.s];
      if (first === ERR) return this.#error(database);
      if (this.#isEof()) break;
      const row: Record<string, unknown> = {};
      if (this.#binary) this.#binaryRow(row, columns, names, cells, sizes, hostile);
      else this.#textRow(row, columns, names, cells, hostile);
      rows.push(row);
    }
    this.#status = this.buf.readUInt16LE(this.s + 3);
    return { fields: names, rows, rowCount: rows.length };
  }

  /** An EOF packet: 0xFE with a payload under 9 bytes (a text row may begin with 0xFE, an 8-byte length). */
  #isEof(): boolean {
    if (this.buf[this.s] !== EOF || this.e - this.s >= 9) return false;
    if (this.e - this.s < 5) throw new Malformed('an EOF packet without its status');
    return true;
  }

  /** A column definition (the current packet), with MariaDB's extended metadata when present. */
  #column(): Column {
    const b = this.buf;
    const e = this.e;
    let o = this.s;
    for (let i = 0; i < 4; i++) o = this.#skipString(o); // catalog, schema, table, org_table
    const nameLength = this.#lenenc(o);
    const nameStart = o + this.#lenencSize(o);
    o = this.#skipString(o);
    o = this.#skipString(o); // org_name
    let json = false;
    // Without extended metadata 13 bytes remain (0x0C and the fixed fields); with it, a
    // length-encoded block of { id, length-encoded value } pairs comes first (mysql2's reading).
    if (e - o !== 13) {
      const blockLength = this.#lenenc(o);
      o += this.#lenencSize(o);
      const end = Math.min(o + blockLength, e);
      while (o < end) {
        const id = b[o++];
        const valueStart = o + this.#lenencSize(o);
        const valueEnd = valueStart + this.#lenenc(o);
        if (valueEnd > e) throw new Malformed('a column definition runs past its packet');
        if (id === 1) json = b.asciiSlice(valueStart, valueEnd) === 'json';
        o = valueEnd;
      }
      o = end;
    }
    if (e - o < 13) throw new Malformed('a column definition without its fixed fields');
    o++; // length of the fixed fields, 0x0C
    const charset = b.readUInt16LE(o);
    const encoding = CHARSET_ENCODINGS[charset] as string;
    // As mysql2: the name in the column's encoding, the connection's (UTF-8) for binary columns.
    const name = decodeText(b, encoding === 'binary' ? 'utf8' : encoding, nameStart, nameStart + nameLength);
    return {
      name,
      charset,
      encoding,
      length: b.readUInt32LE(o + 2),
      type: b[o + 6],
      flags: b.readUInt16LE(o + 7),
      decimals: b[o + 9],
      json,
    };
  }

  #skipString(o: number): number {
    const end = o + this.#lenencSize(o) + this.#lenenc(o);
    if (end > this.e) throw new Malformed('a column definition runs past its packet');
    return end;
  }

  /** Start of the value of the length-prefixed cell at `o` (its end is `this.#cellEnd`); -1 for NULL. */
  #cellStart(o: number): number {
    const t = this.buf[o];
    if (t === NULL_CELL) {
      this.#cellEnd = o + 1;
      return -1;
    }
    const start = o + this.#lenencSize(o);
    const end = start + this.#lenenc(o);
    if (end > this.e) throw new Malformed('a cell runs past its row');
    this.#cellEnd = end;
    return start;
  }

  #textRow(row: Record<string, unknown>, columns: Column[], names: string[], cells: Cell[], hostile: boolean): void {
    const b = this.buf;
    const e = this.e;
    let o = this.s;
    for (let i = 0; i < cells.length; i++) {
      if (o >= e) throw new Malformed('a row with fewer cells than columns');
      let value: unknown;
      const t = b[o];
      if (t < NULL_CELL && o + 1 + t <= e) {
        // The common case, inline: a cell under 251 bytes.
        value = cells[i](b, o + 1, o + 1 + t, columns[i]);
        o += 1 + t;
      } else {
        const start = this.#cellStart(o);
        value = start < 0 ? null : cells[i](b, start, this.#cellEnd, columns[i]);
        o = this.#cellEnd;
      }
      if (hostile) own(row, names[i], value);
      else row[names[i]] = value;
    }
    if (o !== e) throw new Malformed('a row with more bytes than its cells');
  }

  #binaryRow(row: Record<string, unknown>, columns: Column[], names: string[], cells: Cell[], sizes: number[], hostile: boolean): void {
    const b = this.buf;
    const e = this.e;
    const bitmap = this.s + 1;
    // The NULL bitmap of a binary row starts at bit 2.
    let o = bitmap + ((cells.length + 9) >> 3);
    if (b[this.s] !== OK || o > e) throw new Malformed('a binary row without its header');
    for (let i = 0; i < cells.length; i++) {
      let value: unknown = null;
      const bit = i + 2;
      if ((b[bitmap + (bit >> 3)] & (1 << (bit & 7))) === 0) {
        const size = sizes[i];
        if (size > 0) {
          if (o + size > e) throw new Malformed('a cell runs past its row');
          value = cells[i](b, o, o + size, columns[i]);
          o += size;
        } else if (size === 0) {
          if (o >= e) throw new Malformed('a row with fewer cells than columns');
          const t = b[o];
          if (t < NULL_CELL && o + 1 + t <= e) {
            value = cells[i](b, o + 1, o + 1 + t, columns[i]);
            o += 1 + t;
          } else {
            const start = this.#cellStart(o);
            if (start >= 0) value = cells[i](b, start, this.#cellEnd, columns[i]);
            o = this.#cellEnd;
          }
        }
      }
      if (hostile) own(row, names[i], value);
      else row[names[i]] = value;
    }
    if (o !== e) throw new Malformed('a row with more bytes than its cells');
  }
}

/** A column named `__proto__` (or any name) as an own property, never the row's prototype. */
function own(row: Record<string, unknown>, name: string, value: unknown): void {
  Object.defineProperty(row, name, { value, enumerable: true, writable: true, configurable: true });
}
