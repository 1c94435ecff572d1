/**
 * The thread-side MySQL codec (src/wire/mysql-wire.ts) on hand-built answers, without a server:
 * packet walking (16 MiB continuations, EOF vs a text row beginning with 0xFE, several results,
 * ERR mid-rows, OK packets with session-state data, insert ids past 2^53 and 2^63), a column
 * named __proto__, MariaDB's extended column metadata or none, and malformed answers, which give
 * a "malformed MySQL answer" DATABASE_ERROR and never a result, a throw or a loop.
 */
import { describe, expect, it } from 'vitest';
import { BrokerError } from '../../src/errors.js';
import { decodeAnswer, encodeExecuteRequest, encodeQuery } from '../../src/wire/mysql-wire.js';
import type { DecodedMysqlResult } from '../../src/wire/mysql-wire.js';

// ---- packet builders ---------------------------------------------------------------------------

const MORE = 0x0008;
const AUTOCOMMIT = 0x0002;
const STATE_CHANGED = 0x4000;
const UTF8MB4 = 45;
const BINARY = 63;
const T = { TINY: 1, LONG: 3, DOUBLE: 5, NULL: 6, LONGLONG: 8, DATETIME: 12, VAR_STRING: 253, STRING: 254, BLOB: 252, NEWDECIMAL: 246, VECTOR: 242, GEOMETRY: 255 };

function lenenc(n: number | bigint): Buffer {
  const v = BigInt(n);
  if (v < 251n) return Buffer.from([Number(v)]);
  if (v < 0x10000n) return Buffer.from([0xfc, Number(v & 0xffn), Number(v >> 8n)]);
  if (v < 0x1000000n) return Buffer.from([0xfd, Number(v & 0xffn), Number((v >> 8n) & 0xffn), Number(v >> 16n)]);
  const b = Buffer.alloc(9);
  b[0] = 0xfe;
  b.writeBigUInt64LE(v, 1);
  return b;
}

const str = (s: string | Buffer): Buffer => {
  const b = typeof s === 'string' ? Buffer.from(s) : s;
  return Buffer.concat([lenenc(b.length), b]);
};

/** Payloads as packets (continuation packets for payloads of 0xFFFFFF bytes or more), sequence ids from 1. */
function answer(...payloads: Buffer[]): Uint8Array {
  const out: Buffer[] = [];
  let seq = 1;
  for (const p of payloads) {
    let o = 0;
    for (;;) {
      const n = Math.min(0xffffff, p.length - o);
      const h = Buffer.alloc(4);
      h.writeUIntLE(n, 0, 3);
      h[3] = seq++ & 0xff;
      out.push(h, p.subarray(o, o + n));
      o += n;
      if (n < 0xffffff) break;
    }
  }
  // Its own ArrayBuffer at an offset, as a port delivers a view.
  const all = Buffer.concat(out);
  const backing = new Uint8Array(all.length + 3);
  backing.set(all, 3);
  return backing.subarray(3);
}

interface ColOpts { charset?: number; length?: number; flags?: number; decimals?: number; ext?: Buffer }

function column(name: string, type: number, o: ColOpts = {}): Buffer {
  const fixed = Buffer.alloc(13);
  fixed[0] = 0x0c;
  fixed.writeUInt16LE(o.charset ?? UTF8MB4, 1);
  fixed.writeUInt32LE(o.length ?? 11, 3);
  fixed[7] = type;
  fixed.writeUInt16LE(o.flags ?? 0, 8);
  fixed[10] = o.decimals ?? 0;
  return Buffer.concat([str('def'), str('test'), str('t'), str('t'), str(name), str(name), o.ext ?? Buffer.alloc(0), fixed]);
}

const eof = (status = AUTOCOMMIT): Buffer => Buffer.from([0xfe, 0, 0, status & 0xff, status >> 8]);

function ok(affected: number | bigint, insertId: number | bigint, status = AUTOCOMMIT, tail: Buffer = Buffer.alloc(0)): Buffer {
  const s = Buffer.alloc(4);
  s.writeUInt16LE(status, 0);
  return Buffer.concat([Buffer.from([0]), lenenc(affected), lenenc(insertId), s, tail]);
}

function err(errno: number, state: string, message: string): Buffer {
  const e = Buffer.alloc(3);
  e[0] = 0xff;
  e.writeUInt16LE(errno, 1);
  return Buffer.concat([e, Buffer.from(`#${state}${message}`)]);
}

const textRow = (...cells: (string | Buffer | null)[]): Buffer => Buffer.concat(cells.map((c) => (c === null ? Buffer.from([0xfb]) : str(c))));

/** A binary row: cells are raw bytes (already length-prefixed where the type wants it) or null. */
function binaryRow(...cells: (Buffer | null)[]): Buffer {
  const bitmap = Buffer.alloc((cells.length + 9) >> 3);
  cells.forEach((c, i) => {
    if (c === null) bitmap[(i + 2) >> 3] |= 1 << ((i + 2) & 7);
  });
  return Buffer.concat([Buffer.from([0]), bitmap, ...cells.filter((c): c is Buffer => c !== null)]);
}

function resultSet(columns: Buffer[], rows: Buffer[], status = AUTOCOMMIT): Buffer[] {
  return [lenenc(columns.length), ...columns, eof(), ...rows, eof(status)];
}

function decoded(bytes: Uint8Array, binary = false): DecodedMysqlResult {
  const d = decodeAnswer(bytes, 'main', binary);
  if (d instanceof BrokerError) throw new Error(`unexpected error: ${d.message}`);
  return d;
}

function failed(bytes: Uint8Array, binary = false): BrokerError {
  const d = decodeAnswer(bytes, 'main', binary);
  if (!(d instanceof BrokerError)) throw new Error(`expected an error, got ${JSON.stringify(d, (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v))}`);
  return d;
}

const i32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeInt32LE(n);
  return b;
};

// ---- tests -----------------------------------------------------------------------------------

describe('mysql wire: encoding', () => {
  it('encodes COM_QUERY with a zero header and its own exact-size buffer', () => {
    const m = encodeQuery('select "é"');
    expect([...m.subarray(0, 5)]).toEqual([0, 0, 0, 0, 3]);
    expect(Buffer.from(m.subarray(5)).toString('utf8')).toBe('select "é"');
    expect(m.buffer.byteLength).toBe(m.byteLength);
  });

  it('encodes COM_STMT_EXECUTE with statement id 0 at offset 5, or refuses values the text protocol must carry', () => {
    const r = encodeExecuteRequest([1, 'a', null])!;
    expect(r.n).toBe(3);
    expect(r.m.buffer.byteLength).toBe(r.m.byteLength);
    expect([...r.m.subarray(0, 14)]).toEqual([0, 0, 0, 0, 0x17, 0, 0, 0, 0, 0, 1, 0, 0, 0]);
    expect(encodeExecuteRequest([[1, 2]])).toBeUndefined();
    expect(encodeExecuteRequest([Number.NaN])).toBeUndefined();
  });
});

describe('mysql wire: decoding', () => {
  const cols = [column('id', T.LONG), column('name', T.VAR_STRING)];

  it('decodes a text result set into rows keyed by column', () => {
    const d = decoded(answer(...resultSet(cols, [textRow('1', 'a'), textRow('-2', null), textRow('3', '')])));
    expect(d).toEqual({ fields: ['id', 'name'], rows: [{ id: 1, name: 'a' }, { id: -2, name: null }, { id: 3, name: '' }], rowCount: 3 });
  });

  it('tells an EOF packet from a text row that begins with 0xFE (an 8-byte length) by the payload length', () => {
    // A cell with a (non-minimal) 8-byte length: the row's payload starts with 0xFE but has 9 bytes or more.
    const row = Buffer.concat([Buffer.from([0xfe, 1, 0, 0, 0, 0, 0, 0, 0]), Buffer.from('x'), str('y')]);
    const strings = [column('a', T.VAR_STRING), column('b', T.VAR_STRING)];
    expect(decoded(answer(...resultSet(strings, [row, textRow('z', 'w')])))).toEqual({ fields: ['a', 'b'], rows: [{ a: 'x', b: 'y' }, { a: 'z', b: 'w' }], rowCount: 2 });
  });

  it('joins 16 MiB continuation packets, also one of exactly 0xFFFFFF bytes followed by an empty one', () => {
    for (const size of [0xffffff - 4, 0xffffff - 4 + 1, 0x1000000 + 5]) {
      const big = Buffer.alloc(size, 0x61);
      big[0] = 0x62;
      const payload = textRow('7', big);
      const d = decoded(answer(...resultSet(cols, [payload, textRow('8', 'z')])));
      expect(d.rows.length).toBe(2);
      expect(d.rows[0].id).toBe(7);
      const s = d.rows[0].name as string;
      expect(s.length).toBe(size);
      expect(s.startsWith('baa')).toBe(true);
      expect(d.rows[1]).toEqual({ id: 8, name: 'z' });
    }
    // A BLOB cell past 16 MiB is a Buffer of its own.
    const blob = Buffer.alloc(0xffffff + 10, 1);
    const d = decoded(answer(...resultSet([column('b', T.BLOB, { charset: BINARY })], [textRow(blob)])));
    const cell = d.rows[0].b as Buffer;
    expect(Buffer.isBuffer(cell) && cell.equals(blob)).toBe(true);
    expect(cell.buffer.byteLength).toBe(cell.byteLength);
  });

  it('gives the last result of several: a final OK wins over result sets, a later result set over an OK', () => {
    const set1 = resultSet([column('a', T.LONG)], [textRow('1')], AUTOCOMMIT | MORE);
    const set2 = resultSet([column('b', T.VAR_STRING)], [textRow('two')], AUTOCOMMIT | MORE);
    expect(decoded(answer(...set1, ...set2, ok(0, 0)))).toEqual({ fields: [], rows: [], rowCount: 0 });
    expect(decoded(answer(...set1, ...resultSet([column('b', T.VAR_STRING)], [textRow('two')]))).rows).toEqual([{ b: 'two' }]);
    expect(decoded(answer(ok(3, 9, AUTOCOMMIT | MORE), ...resultSet([column('a', T.LONG)], [])))).toEqual({ fields: ['a'], rows: [], rowCount: 0 });
    expect(decoded(answer(ok(3, 9, AUTOCOMMIT | MORE), ok(2, 0)))).toEqual({ fields: [], rows: [], rowCount: 2 });
  });

  it('gives an ERR packet, also one after rows or after a first result, as mysql2 and mysqlError give it', () => {
    const message = "Duplicate entry 'a' for key 'uniq_name'";
    for (const bytes of [
      answer(err(1062, '23000', message)),
      answer(lenenc(2), ...cols, eof(), textRow('1', 'a'), err(1062, '23000', message)),
      answer(...resultSet(cols, [textRow('1', 'a')], AUTOCOMMIT | MORE), err(1062, '23000', message)),
    ]) {
      const e = failed(bytes);
      expect(e).toMatchObject({ code: 'DATABASE_ERROR', message, errno: 1062, driverCode: 'ER_DUP_ENTRY', sqlState: '23000', constraint: 'uniq_name', database: 'main' });
    }
    // A fatal SQLSTATE is a lost connection, as on the driver's path.
    expect(failed(answer(err(1040, '08004', 'Too many connections')))).toMatchObject({ code: 'CONNECTION_LOST', errno: 1040, driverCode: 'ER_CON_COUNT_ERROR' });
  });

  it('reads OK packets with session-state data, and insert ids past 2^53 and 2^63 as mysql2 does', () => {
    const track = Buffer.concat([str(''), str(Buffer.concat([Buffer.from([0]), str(Buffer.concat([str('autocommit'), str('OFF')]))]))]);
    expect(decoded(answer(ok(5, 0, STATE_CHANGED, track)))).toEqual({ fields: [], rows: [], rowCount: 5 });
    expect(decoded(answer(ok(1, 70000, AUTOCOMMIT, str('Rows matched: 1'))))).toEqual({ fields: [], rows: [], rowCount: 1, insertId: 70000 });
    expect(decoded(answer(ok(1, 2n ** 53n - 1n))).insertId).toBe(2 ** 53 - 1);
    expect(decoded(answer(ok(1, 2n ** 53n + 1n))).insertId).toBe(2n ** 53n + 1n);
    expect(decoded(answer(ok(1, 2n ** 63n))).insertId).toBe(-(2n ** 63n)); // signed, as mysql2 reads it
    expect(decoded(answer(ok(1, 2n ** 64n - 6n))).insertId).toBe(-6);
  });

  it('makes a column named __proto__ an own property; a duplicate name keeps the last value', () => {
    const d = decoded(answer(...resultSet([column('__proto__', T.LONG), column('a', T.LONG), column('a', T.LONG)], [textRow('1', '2', '3')])));
    const row = d.rows[0];
    expect(Object.getPrototypeOf(row)).toBe(Object.prototype);
    expect(Object.getOwnPropertyDescriptor(row, '__proto__')).toMatchObject({ value: 1, enumerable: true });
    expect(Object.keys(row)).toEqual(['__proto__', 'a']);
    expect(row.a).toBe(3);
    const b = decoded(answer(...resultSet([column('__proto__', T.LONG)], [binaryRow(i32(4))])), true).rows[0];
    expect(Object.getOwnPropertyDescriptor(b, '__proto__')?.value).toBe(4);
  });

  it('reads binary rows: the NULL bitmap from bit 2 across bytes, fixed-size and length-prefixed cells', () => {
    const names = ['c0', 'c1', 'c2', 'c3', 'c4', 'c5', 'c6', 'c7', 'c8'];
    const columns = names.map((n) => column(n, T.LONG));
    const cells = names.map((_n, i) => (i % 3 === 1 ? null : i32(i - 4)));
    const d = decoded(answer(...resultSet(columns, [binaryRow(...cells)])), true);
    expect(d.rows[0]).toEqual(Object.fromEntries(names.map((n, i) => [n, i % 3 === 1 ? null : i - 4])));
    const big = Buffer.alloc(8);
    big.writeBigInt64LE(-(2n ** 62n));
    const dbl = Buffer.alloc(8);
    dbl.writeDoubleLE(0.1 + 0.2);
    const mixed = [column('t', T.TINY, { length: 1 }), column('u', T.TINY, { length: 3, flags: 0x20 }), column('l', T.LONGLONG), column('s', T.VAR_STRING), column('d', T.DOUBLE, { decimals: 31 }), column('n', T.NULL)];
    const row = decoded(answer(...resultSet(mixed, [binaryRow(Buffer.from([2]), Buffer.from([250]), big, str('ü'), dbl, null)])), true).rows[0];
    expect(row).toEqual({ t: true, u: 250, l: -(2n ** 62n), s: 'ü', d: 0.30000000000000004, n: null });
  });

  it('reads column definitions with and without MariaDB extended metadata (JSON as text even in a binary charset)', () => {
    const ext = (pairs: [number, string][]): Buffer => str(Buffer.concat(pairs.map(([id, v]) => Buffer.concat([Buffer.from([id]), str(v)]))));
    for (const e of [undefined, ext([]), ext([[0, 'point']]), ext([[0, 'x'.repeat(10)]])]) {
      const d = decoded(answer(...resultSet([column('name', T.VAR_STRING, { ext: e })], [textRow('v')])));
      expect(d.rows).toEqual([{ name: 'v' }]);
    }
    const json = decoded(answer(...resultSet([column('j', T.BLOB, { charset: BINARY, ext: ext([[1, 'json']]) }), column('b', T.BLOB, { charset: BINARY })], [textRow('{}', '{}')])));
    expect(json.rows[0].j).toBe('{}');
    expect(Buffer.isBuffer(json.rows[0].b)).toBe(true);
  });

  it('reads DECIMAL, DATETIME, GEOMETRY and VECTOR text cells as mysql2 does', () => {
    const point = Buffer.alloc(25);
    point[4] = 1;
    point.writeUInt32LE(1, 5);
    point.writeDoubleLE(1.5, 9);
    point.writeDoubleLE(-2, 17);
    const vector = Buffer.alloc(8);
    vector.writeFloatLE(0.5, 0);
    vector.writeFloatLE(-1, 4);
    const columns = [column('m', T.NEWDECIMAL), column('t', T.DATETIME), column('g', T.GEOMETRY, { charset: BINARY }), column('v', T.VECTOR, { charset: BINARY })];
    const d = decoded(answer(...resultSet(columns, [textRow('-0.50', '2024-01-02 03:04:05.6789', point, vector), textRow('1', '0000-00-00 00:00:00', Buffer.alloc(0), null)])));
    expect(d.rows[0]).toEqual({ m: '-0.50', t: new Date(Date.UTC(2024, 0, 2, 3, 4, 5, 678)), g: { x: 1.5, y: -2 }, v: [0.5, -1] });
    expect(Number.isNaN((d.rows[1].t as Date).getTime())).toBe(true);
    expect(d.rows[1].g).toBeNull();
  });

  it('refuses every truncation of an answer, trailing bytes and malformed packets, without throwing', () => {
    const whole = Buffer.from(answer(...resultSet(cols, [textRow('1', 'abc'), textRow('2', null)])));
    for (let cut = 0; cut < whole.length; cut++) expect(failed(whole.subarray(0, cut)).message).toMatch(/^malformed MySQL answer/);
    const binaryWhole = Buffer.from(answer(...resultSet(cols, [binaryRow(i32(1), str('abc')), binaryRow(i32(2), null)])));
    expect(decoded(binaryWhole, true).rows).toEqual([{ id: 1, name: 'abc' }, { id: 2, name: null }]);
    for (let cut = 0; cut < binaryWhole.length; cut++) expect(failed(binaryWhole.subarray(0, cut), true).message).toMatch(/^malformed MySQL answer/);
    const bad: [string, Uint8Array, boolean?][] = [
      ['trailing bytes', Buffer.concat([whole, Buffer.from([1, 0, 0, 9, 0])])],
      ['a cell past its row', answer(lenenc(2), ...cols, eof(), Buffer.from([1, 0x31, 5, 0x61]), eof())],
      ['a row with an extra byte', answer(lenenc(2), ...cols, eof(), Buffer.concat([textRow('1', 'a'), Buffer.from([0])]), eof())],
      ['a row with a missing cell', answer(lenenc(2), ...cols, eof(), textRow('1'), eof())],
      ['0xFF inside a row', answer(lenenc(2), ...cols, eof(), Buffer.from([1, 0x31, 0xff]), eof())],
      ['a column count of LOCAL INFILE', answer(Buffer.from([0xfb, 0x61]))],
      ['no EOF after the columns', answer(lenenc(2), ...cols, textRow('1', 'a'), eof())],
      ['a column definition cut short', answer(lenenc(1), column('id', T.LONG).subarray(0, 20), eof(), eof())],
      ['an empty packet', answer(Buffer.alloc(0))],
      ['an empty answer', new Uint8Array(0)],
      ['a binary row without its 0x00 header', answer(lenenc(1), cols[0], eof(), Buffer.from([1, 0, 1, 0, 0, 0]), eof()), true],
      ['a binary cell past its row', answer(lenenc(1), cols[0], eof(), Buffer.from([0, 0, 1, 0]), eof()), true],
    ];
    for (const [what, bytes, binary] of bad) expect({ what, message: failed(bytes, binary).message }).toEqual({ what, message: expect.stringMatching(/^malformed MySQL answer/) });
  });

  it('gives a result or an error for any corrupted answer, never a throw or a hang', () => {
    const whole = Buffer.from(answer(...resultSet([...cols, column('d', T.DATETIME), column('m', T.NEWDECIMAL)], [textRow('1', 'abc', '2024-01-02 03:04:05', '1.5'), textRow('2', null, null, '-3')])));
    let seed = 7;
    const next = (): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31);
    for (let round = 0; round < 3000; round++) {
      const b = Buffer.from(whole);
      for (let k = 1 + (next() % 3); k > 0; k--) b[next() % b.length] = next() % 256;
      for (const binary of [false, true]) {
        const d = decodeAnswer(b, 'main', binary);
        expect(d instanceof BrokerError || Array.isArray(d.rows)).toBe(true);
      }
    }
  });
});
