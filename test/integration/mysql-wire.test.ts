/**
 * The thread-side MySQL codec (src/wire/mysql-wire.ts), differentially against a real server:
 * every statement runs (a) through the driver's path (a MysqlDriver connection's `query`, then
 * `toReply`/`toResult`, what users get today) and (b) as the packet `encodeQuery` /
 * `encodeExecuteRequest` builds, written straight to the socket of a mysql2 connection with the
 * driver's options, its raw answer captured and decoded by `decodeAnswer`. Both must agree value
 * for value, with exact types (tag()), on fields, rowCount, insertId and errors.
 */
import mysql from 'mysql2';
import type { Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toReply } from '../../src/broker/request-handler.js';
import { toResult } from '../../src/client/result.js';
import type { DatabaseConfig } from '../../src/config/types.js';
import type { DriverConnection } from '../../src/drivers/driver.js';
import { MysqlDriver } from '../../src/drivers/mysql/mysql-driver.js';
import { MYSQL_SESSION_SQL, MYSQL_TYPE_OPTIONS } from '../../src/wire/mysql-types.js';
import { BrokerError } from '../../src/errors.js';
import { decodeAnswer, encodeExecuteRequest, encodeQuery } from '../../src/wire/mysql-wire.js';
import type { DecodedMysqlResult } from '../../src/wire/mysql-wire.js';
import { KINDS, MYSQL_URL } from '../helpers/test-setup.js';

/** A value with its exact type: 1 vs '1' vs 1n vs true, -0, Buffer vs Uint8Array, invalid Dates, nested objects. */
function tag(v: unknown): string {
  if (v === null) return 'null';
  if (v instanceof Date) return `Date:${Number.isNaN(v.getTime()) ? 'Invalid' : v.toISOString()}`;
  if (v instanceof Uint8Array) return `${v.constructor.name}:${Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('hex')}`;
  if (typeof v === 'number') return `number:${Object.is(v, -0) ? '-0' : String(v)}`;
  if (typeof v === 'object') return `${Object.getPrototypeOf(v) === Array.prototype ? 'array' : 'object'}:${JSON.stringify(v, (_k, x: unknown) => (Object.is(x, -0) ? '-0' : x))}`;
  return `${typeof v}:${String(v)}`;
}

interface Outcome {
  fields?: string[];
  /** Each row's keys in order, then their tagged values. */
  rows?: [string[], Record<string, string>][];
  rowCount?: number;
  insertId?: string;
  error?: Record<string, unknown>;
}

function rowsOf(rows: Record<string, unknown>[]): [string[], Record<string, string>][] {
  return rows.map((r) => {
    expect(Object.getPrototypeOf(r)).toBe(Object.prototype);
    return [Object.keys(r), Object.fromEntries(Object.entries(r).map(([k, v]) => [k, tag(v)]))];
  });
}

function errorOf(err: BrokerError): Outcome {
  return { error: { code: err.code, message: err.message, errno: err.errno, driverCode: err.driverCode, sqlState: err.sqlState, constraint: err.constraint } };
}

/** The text protocol's SQL for `sql` with `params`, as mysql2 writes it for the driver's text path. */
function inline(sql: string, params: unknown[]): string {
  return mysql.format(sql, params as Parameters<typeof mysql.format>[1], true, 'Z');
}

/**
 * A framer independent of the decoder: true once `b[0, len)` holds a whole answer (the packet that
 * ends the final result), counting logical packets by their headers and first bytes.
 */
class TestFramer {
  #pos = 0;
  #state: 'header' | 'columns' | 'columnsEof' | 'rows' = 'header';
  #columns = 0;
  #continued = false;
  done = false;

  feed(b: Buffer, len: number): void {
    while (!this.done && this.#pos + 4 <= len) {
      const n = b.readUIntLE(this.#pos, 3);
      if (this.#pos + 4 + n > len) return;
      const p = b.subarray(this.#pos + 4, this.#pos + 4 + n);
      this.#pos += 4 + n;
      const part = this.#continued;
      this.#continued = n === 0xffffff;
      if (!part) this.#logical(p);
    }
  }

  #logical(p: Buffer): void {
    const lenenc = (o: number): [number, number] => (p[o] < 0xfb ? [p[o], 1] : p[o] === 0xfc ? [p.readUInt16LE(o + 1), 3] : p[o] === 0xfd ? [p.readUIntLE(o + 1, 3), 4] : [Number(p.readBigUInt64LE(o + 1)), 9]);
    const more = (status: number): void => {
      if ((status & 8) === 0) this.done = true;
      else this.#state = 'header';
    };
    if (p[0] === 0xff) {
      this.done = true;
      return;
    }
    switch (this.#state) {
      case 'header':
        if (p[0] === 0) {
          const o = 1 + lenenc(1)[1];
          more(p.readUInt16LE(o + lenenc(o)[1]));
        } else {
          this.#columns = lenenc(0)[0];
          this.#state = 'columns';
        }
        break;
      case 'columns':
        if (--this.#columns === 0) this.#state = 'columnsEof';
        break;
      case 'columnsEof':
        this.#state = 'rows';
        break;
      case 'rows':
        if (p[0] === 0xfe && p.length < 9) more(p.readUInt16LE(3));
        break;
    }
  }
}

type RawConnection = mysql.Connection & { stream: Socket };

const CONNECT = (() => {
  const u = new URL(MYSQL_URL);
  return { host: u.hostname, port: Number(u.port || 3306), user: decodeURIComponent(u.username), password: decodeURIComponent(u.password), database: u.pathname.slice(1) || 'test' };
})();

/** A mysql2 connection as the driver opens one (type options, UTC session), minus LOCAL_FILES and query attributes. */
async function openRaw(): Promise<RawConnection> {
  const conn = mysql.createConnection({ ...MYSQL_TYPE_OPTIONS, ...CONNECT, flags: ['-LOCAL_FILES', '-CLIENT_QUERY_ATTRIBUTES'] }) as RawConnection;
  await new Promise<void>((resolve, reject) => conn.query(MYSQL_SESSION_SQL, (err) => (err ? reject(err) : resolve())));
  return conn;
}

/** Writes one command packet (header filled in: payload length, sequence id 0) and returns the raw answer. */
function capture(conn: RawConnection, packet: Uint8Array): Promise<Buffer> {
  const stream = conn.stream;
  const listeners = stream.listeners('data') as ((d: Buffer) => void)[];
  expect(listeners).toHaveLength(1); // mysql2's packet parser, idle between commands
  const mysql2Listener = listeners[0];
  stream.removeListener('data', mysql2Listener);
  const out = Buffer.from(packet);
  out.writeUIntLE(out.length - 4, 0, 3);
  out[3] = 0;
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(1 << 16);
    let len = 0;
    const framer = new TestFramer();
    const restore = (): void => {
      clearTimeout(timer);
      stream.removeListener('data', onData);
      stream.on('data', mysql2Listener);
    };
    const onData = (d: Buffer): void => {
      if (len + d.length > buf.length) {
        const grown = Buffer.alloc(Math.max(buf.length * 2, len + d.length));
        buf.copy(grown, 0, 0, len);
        buf = grown;
      }
      d.copy(buf, len);
      len += d.length;
      framer.feed(buf, len);
      if (framer.done) {
        restore();
        resolve(Buffer.from(buf.subarray(0, len)));
      }
    };
    const timer = setTimeout(() => {
      restore();
      reject(new Error(`no complete answer after ${len} bytes`));
    }, 30_000);
    stream.on('data', onData);
    stream.write(out);
  });
}

/** The statement id of `sql` prepared on `conn`, or undefined when the server refuses it (the driver then runs it as text). */
function prepare(conn: RawConnection, sql: string): Promise<number | undefined> {
  return new Promise((resolve) => conn.prepare(sql, (err, stmt) => resolve(err ? undefined : (stmt as unknown as { id: number }).id)));
}

function rawQuery(conn: RawConnection, sql: string): Promise<unknown> {
  return new Promise((resolve, reject) => conn.query(sql, (err, res) => (err ? reject(err) : resolve(res))));
}

describe.runIf(KINDS.includes('mysql'))('mysql wire codec: decodeAnswer gives exactly what the driver gives', () => {
  let driverConn: DriverConnection;
  let raw: RawConnection;
  let admin: RawConnection;
  /** The raw answer and its decoding of the last `viaWire` call, for checks of their own. */
  let lastAnswer: Buffer = Buffer.alloc(0);
  let lastDecoded: DecodedMysqlResult | BrokerError | undefined;

  const config = { name: 'db', driver: 'mysql', url: MYSQL_URL, connectTimeoutMillis: 10_000, queryTimeoutMillis: 0, maxRows: 0, maxResultBytes: 0 } as unknown as DatabaseConfig;

  async function viaDriver(sql: string, params?: unknown[]): Promise<Outcome> {
    try {
      const r = toResult<Record<string, unknown>>(toReply(1, await driverConn.query(sql, params)));
      return { fields: r.fields.map((f) => f.name), rows: rowsOf(r.rows), rowCount: r.rowCount, insertId: r.insertId === undefined ? undefined : tag(r.insertId) };
    } catch (err) {
      if (!(err instanceof BrokerError)) throw err;
      return errorOf(err);
    }
  }

  async function viaWire(sql: string, params?: unknown[]): Promise<Outcome> {
    let answer: Buffer;
    let binary = false;
    const request = params !== undefined && params.length > 0 ? encodeExecuteRequest(params) : undefined;
    const id = request === undefined ? undefined : await prepare(raw, sql);
    if (request !== undefined && id !== undefined) {
      expect(request.n).toBe(params!.length);
      Buffer.from(request.m.buffer, request.m.byteOffset).writeUInt32LE(id, 5);
      answer = await capture(raw, request.m);
      binary = true;
    } else {
      answer = await capture(raw, encodeQuery(params === undefined ? sql : inline(sql, params)));
    }
    const d = decodeAnswer(answer, 'db', binary);
    lastAnswer = answer;
    lastDecoded = d;
    if (d instanceof BrokerError) return errorOf(d);
    return { fields: d.fields, rows: rowsOf(d.rows), rowCount: d.rowCount, insertId: d.insertId === undefined ? undefined : tag(d.insertId) };
  }

  /** Runs `sql` both ways and expects the same outcome; returns it. */
  async function same(sql: string, params?: unknown[]): Promise<Outcome> {
    const a = await viaDriver(sql, params);
    const b = await viaWire(sql, params);
    expect({ sql, params: params?.map(tag), ...b }).toEqual({ sql, params: params?.map(tag), ...a });
    return b;
  }

  beforeAll(async () => {
    driverConn = await new MysqlDriver(config).connect(1);
    raw = await openRaw();
    admin = await openRaw();
    await rawQuery(admin, `set session sql_mode = ''`); // zero dates and zero months can be stored
    await rawQuery(admin, 'drop table if exists wire_types');
    await rawQuery(admin, `create table wire_types (id int primary key,
      ti tinyint, tu tinyint unsigned, b tinyint(1), bu tinyint(1) unsigned, si smallint, su smallint unsigned,
      mi mediumint, mu mediumint unsigned, i int, iu int unsigned, bi bigint, bu64 bigint unsigned,
      dc decimal(10,2), dw decimal(65,30), f float, f73 float(7,3), d double, d102 double(10,2),
      dt date, dtm datetime, dtm1 datetime(1), dtm3 datetime(3), dtm6 datetime(6), ts timestamp null, ts6 timestamp(6) null,
      tm time, tm1 time(1), tm6 time(6), yr year,
      c char(5), vc varchar(100), tx text, l1 varchar(20) character set latin1, en enum('a','b'), st set('x','y'),
      bn binary(4), vb varbinary(10), bl blob, bt1 bit(1), bt10 bit(10), bt64 bit(64),
      js json, geo geometry null, pt point null, ip inet6, uu uuid)`);
    await rawQuery(admin, `insert into wire_types values
      (1, -5, 200, 1, 1, -300, 65535, 70000, 16777215, -2000000000, 4000000000, 9007199254740991, 9007199254740992,
        12.34, '1234567890.123456789012345678901234567890', 1.1, 3.142, 0.1e0 + 0.2e0, 2.28,
        '2024-01-02', '2024-01-02 03:04:05', '2024-01-02 03:04:05.6', '2024-01-02 03:04:05.678', '2024-01-02 03:04:05.678999', '2024-01-02 03:04:05', '2024-01-02 03:04:05.123456',
        '12:34:56', '-00:00:01.5', '-01:02:03.500000', 2024,
        'ab', 'héllo ☃ 😀 \\\\ '' "', 'text', 'café', 'b', 'x,y',
        x'00ff', x'0102', x'deadbeef', b'1', b'1010101010', b'1111111111111111111111111111111111111111111111111111111111111111',
        '{"a": [1, 2.5, "x"], "big": 12345678901234567890}', st_geomfromtext('POLYGON((0 0, 1 0, 1 1, 0 0))'), point(1, 2), '::1', '123e4567-e89b-12d3-a456-426614174000'),
      (3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, -9007199254740991, 0, -0.01, '-0.000000000000000000000000000001',
        24432.25, -0.001, 950972468400.9657, -0.01,
        '0000-00-00', '0000-00-00 00:00:00', '0000-00-00 00:00:00.0', '0050-01-02 03:04:05.001', '0050-01-02 03:04:05.000001', '0000-00-00 00:00:00', '1970-01-01 00:00:01.000001',
        '838:59:59', '00:00:00', '-00:00:00.000001', 0,
        '', '', '', '', 'a', '',
        x'00000000', x'', x'', b'0', b'0', b'0',
        '[]', null, null, '::', '00000000-0000-0000-0000-000000000000'),
      (4, 127, 255, 0, 255, 32767, 0, -8388608, 0, 2147483647, 0, -9007199254740992, 18446744073709551615,
        99999999.99, '-99999999999999999999999999999999999.999999999999999999999999999999',
        1234565, 9999.999, 9295.427508433419, 12345678.91,
        '9999-12-31', '0001-01-01 00:00:00', '2024-00-15 00:00:00.5', '2024-05-00 10:00:00', '9999-12-31 23:59:59.999999', '2038-01-19 03:14:07', '2038-01-19 03:14:07.999999',
        '-838:59:59', '24:00:00.1', '00:00:00.000001', 1901,
        'zzzzz', 'x', repeat('y', 1000), 'ÿ', 'a', 'x',
        x'ffffffff', x'ff', x'00', b'1', b'1111111111', b'0',
        'null', st_geomfromtext('GEOMETRYCOLLECTION(POINT(1 1), LINESTRING(0 0, 1 1, 2 0))'), point(-1.5, 1e300), 'ffff::1', 'ffffffff-ffff-ffff-ffff-ffffffffffff'),
      (5, -128, 1, 1, 0, -32768, 1, 1, 1, -2147483648, 4294967295, -9223372036854775808, 9223372036854775808,
        -99999999.99, 0, 3.4e38, -9999.999, 1.7976931348623157e308, -0.005,
        '0099-12-31', '0099-12-31 23:59:59', '0001-01-01 00:00:00.9', '1969-12-31 23:59:59.999', '1000-01-01 00:00:00.000000', '1970-01-01 00:00:01', '2000-02-29 12:00:00.5',
        '-00:00:00', '-838:59:58.9', '838:59:58.999999', 2155,
        '😀', '😀😀', 'x', 'ÀÖ', 'b', 'x,y',
        x'7f', x'80', repeat(x'ab', 300), b'0', b'0', b'1000000000000000000000000000000000000000000000000000000000000000',
        '{"s": "😀"}', null, point(0, -0), null, null)`);
    await rawQuery(admin, `insert into wire_types (id) values (2)`);
    await rawQuery(admin, `insert into wire_types (id, ti, tu, b, bu, si, su, mi, mu, i, iu, bi, bu64, dc, dw, f, f73, d, d102) values
      (6, 1, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0.5, 0.5, 1.17549435e-38, 0.0005, 5e-324, 0.125),
      (7, 1, 2, 1, 1, 1, 1, 1, 1, 1, 1, 9007199254740993, 18446744073709551614, 1, 1, -24432.25, 0.0015, -1.2345678901234567e-300, 0.015),
      (8, 1, 2, 1, 1, 1, 1, 1, 1, 1, 1, -9007199254740993, 1, 1, 1, 0.000030864628, 1.0005, 9007199254740.993, 1e15)`);
    for (const side of ['a', 'b']) {
      await rawQuery(admin, `drop table if exists wire_dml_${side}`);
      await rawQuery(admin, `create table wire_dml_${side} (id bigint unsigned auto_increment primary key, v varchar(20), constraint wire_uniq_v unique (v))`);
    }
    await rawQuery(admin, 'drop procedure if exists wire_proc');
    await rawQuery(admin, `create procedure wire_proc(in k int) begin select k + 1 as x; select 'two' as y, k as z; end`);
    await rawQuery(admin, 'drop procedure if exists wire_proc_sets');
    await rawQuery(admin, `create procedure wire_proc_sets() begin select 1 as a; end`);
    await rawQuery(admin, 'drop procedure if exists wire_proc_fail');
    await rawQuery(admin, `create procedure wire_proc_fail() begin select 1 as a; signal sqlstate '45000' set message_text = 'wire: boom', mysql_errno = 1644; end`);
  });

  afterAll(async () => {
    await rawQuery(admin, 'drop table if exists wire_types, wire_dml_a, wire_dml_b, wire_err, wire_bigrow');
    for (const p of ['wire_proc', 'wire_proc_sets', 'wire_proc_fail']) await rawQuery(admin, `drop procedure if exists ${p}`);
    admin.end();
    raw.end();
    await driverConn.end();
  });

  it('gives every column type, text and binary, as the driver does (signed/unsigned extremes, NULLs, zero dates, reals)', async () => {
    const text = await same('select * from wire_types order by id');
    expect(text.rows).toHaveLength(8);
    await same('select * from wire_types where id >= ? order by id', [0]);
    for (let id = 1; id <= 8; id++) await same('select * from wire_types where id = ?', [id]);
    // A few cells pinned, so that both paths cannot agree on something else than what users expect.
    const row = (n: number): Record<string, string> => text.rows![n][1];
    expect(row(0)).toMatchObject({ b: 'boolean:true', bi: 'number:9007199254740991', bu64: 'bigint:9007199254740992', dt: 'string:2024-01-02', dtm: 'Date:2024-01-02T03:04:05.000Z', dc: 'string:12.34', f: 'number:1.1', d: 'number:0.30000000000000004', tm1: 'string:-00:00:01.5', bt1: 'Buffer:01', pt: 'object:{"x":1,"y":2}', yr: 'number:2024' });
    expect(row(2)).toMatchObject({ dtm: 'Date:Invalid', dt: 'string:0000-00-00', vb: 'Buffer:' });
    expect(row(4)).toMatchObject({ bi: 'bigint:-9223372036854775808', bu64: 'bigint:9223372036854775808', vc: 'string:😀😀' });
  });

  it('gives expressions and bound parameters of every kind as the driver does', async () => {
    for (const sql of [
      'select 1', 'select 1 as a, 2 as a', 'select -0e0 as z', 'select 1.5 as d', "select 'a' as s, '' as e", 'select null as n',
      'select 9007199254740993 as big', 'select 18446744073709551615 as u', 'select -9223372036854775808 as m', 'select 0.1e0 + 0.2e0 as r',
      "select cast('2024-01-02' as date) as d", "select cast('0010-02-03 04:05:06.7' as datetime(1)) as t", "select cast('-1:2:3.45' as time(2)) as t",
      "select sec_to_time(-3661.5) as t", "select _latin1 x'e9' as l", "select x'00ff' as b", "select b'101' as bits", "select json_object('a', 1, 'b', 'ü') as j",
      "select st_geomfromtext('LINESTRING(0 0, 1 1)') as g", "select st_geomfromtext('MULTIPOINT(0 0, 1 1)') as g", "select st_geomfromtext('MULTIPOLYGON(((0 0, 1 0, 1 1, 0 0)))') as g",
      'select 1/0 as n', 'select cast(1 as unsigned) as u', 'select true as t', 'select round(2.5e0, 0) as r, round(1.005e0, 2) as r2',
      "select convert('日本' using utf8mb4) as u, convert('ab' using latin1) as l", 'select * from wire_types where id < 0',
    ]) await same(sql);
    const date = new Date(Date.UTC(2024, 0, 2, 3, 4, 5, 678));
    for (const [sql, params] of [
      ['select ?', [1]], ['select ?', ['a']], ['select ?', [1.5]], ['select ?', [true]], ['select ?', [null]], ['select ?', [undefined]],
      ['select ?', [9007199254740993n]], ['select ?', [2n ** 64n - 1n]], ['select ?', [-(2n ** 63n)]], ['select ?', [-5]], ['select ?', [2 ** 40]],
      ['select ?', [1e-7]], ['select ?', [1e300]], ['select ?', [-0]], ['select ?', [date]], ['select ?', [Buffer.from([0, 255])]],
      ['select ?', ['héllo ☃ 😀']], ['select ?', ['']], ['select ? / 2', [5]], ['select ? / 2', [1.5]], ['select ? / 2', [9007199254740993n]],
      ['select concat(?)', [1]], ['select concat(?)', [1.5]], ['select concat(?)', [true]], ['select concat(?)', [Buffer.from('ab')]], ['select concat(?)', [date]],
      ['select ? + 1', [2 ** 53 - 1]], ['select ?, ? as b', [1, 'x']], ['select ?', [[1, 2]]], ['select ?', [Number.NaN]], ['select ?', [{ a: 1 }]],
      ['select * from wire_types where id = ? and vc = ?', [1, 'nope']],
    ] as [string, unknown[]][]) await same(sql, params);
  });

  it('decodes strings in the column charset the server reports (latin1, koi8r through iconv-lite)', async () => {
    await rawQuery(admin, "update wire_types set tx = 'Привет' where id = 3");
    const tx = { latin1: 'string:??????', koi8r: 'string:Привет', binary: `Buffer:${Buffer.from('Привет').toString('hex')}` };
    for (const charset of ['latin1', 'koi8r', 'binary'] as const) {
      await same(`set character_set_results = ${charset}`);
      const out = await same('select id, c, vc, tx, l1, en, st, js from wire_types order by id');
      expect(out.rows?.[2][1].tx).toBe(tx[charset]);
      await same('select id, tx as `ключ` from wire_types where id = ?', [3]);
      await same('select nosuchcolumn_é from wire_types');
    }
    await same('set character_set_results = utf8mb4');
  });

  it('gives rowCount and insertId of INSERT, UPDATE and DELETE, past 2^53 and past 2^63', async () => {
    // Each side writes its own, identical table, so both see the same state.
    const both = async (sql: string, params?: unknown[]): Promise<Outcome> => {
      const a = await viaDriver(sql.replaceAll('wire_dml', 'wire_dml_a'), params);
      const b = await viaWire(sql.replaceAll('wire_dml', 'wire_dml_b'), params);
      expect({ sql, ...b }).toEqual({ sql, ...a });
      return b;
    };
    expect(await both("insert into wire_dml (v) values ('a'), ('b')")).toMatchObject({ rowCount: 2, insertId: 'number:1' });
    expect(await both('insert into wire_dml (v) values (?)', ['c'])).toMatchObject({ rowCount: 1, insertId: 'number:3' });
    expect(await both("update wire_dml set v = concat(v, '!') where id <= ?", [2])).toMatchObject({ rowCount: 2 });
    expect(await both("update wire_dml set v = v where id = 1")).toMatchObject({ rowCount: 1 }); // FOUND_ROWS: matched rows
    expect(await both("insert into wire_dml (v) values ('c')")).toMatchObject({ error: { errno: 1062, constraint: 'wire_uniq_v', code: 'DATABASE_ERROR' } });
    expect(await both('insert into wire_dml (v) values (?)', ['c'])).toMatchObject({ error: { errno: 1062, constraint: 'wire_uniq_v' } });
    await both('alter table wire_dml auto_increment = 9007199254740993');
    expect(await both("insert into wire_dml (v) values ('big')")).toMatchObject({ insertId: 'bigint:9007199254740993' });
    await both('alter table wire_dml auto_increment = 18446744073709551610');
    // mysql2 reads the id as a signed 64-bit number: -6.
    expect(await both('insert into wire_dml (v) values (?)', ['huge'])).toMatchObject({ insertId: 'number:-6' });
    expect(await both('delete from wire_dml where id > ?', [3])).toMatchObject({ rowCount: 2 });
    expect(await both('delete from wire_dml where id > 100')).toMatchObject({ rowCount: 0 });
  });

  it('gives server errors as the driver does: syntax, unknown table, out of range, one raised mid-rows', async () => {
    expect(await same('selec 1')).toMatchObject({ error: { errno: 1064, sqlState: '42000', driverCode: 'ER_PARSE_ERROR' } });
    expect(await same('select * from wire_nope')).toMatchObject({ error: { errno: 1146, driverCode: 'ER_NO_SUCH_TABLE' } });
    await same('select 1e308 * 10');
    await same('select * from wire_nope where id = ?', [1]);
    await rawQuery(admin, 'drop table if exists wire_err');
    await rawQuery(admin, 'create table wire_err (id int primary key)');
    await rawQuery(admin, 'insert into wire_err values (1), (2), (3)');
    // The subquery returns one row for id 1 and two from id 2 on: rows come, then the ERR.
    const sql = 'select t.id, (select e.id from wire_err e where e.id <= t.id) as s from wire_err t order by t.id';
    expect(await same(sql)).toMatchObject({ error: { errno: 1242 } });
    expect(await same(`${sql.replace('order by', 'where t.id > ? order by')}`, [0])).toMatchObject({ error: { errno: 1242 } });
    // The row (1, 1) came before the ERR.
    const answer = await capture(raw, encodeQuery(sql));
    expect(answer.includes(Buffer.from([0x01, 0x31, 0x01, 0x31]))).toBe(true);
  });

  it('gives the last result of a CALL (its final OK), and its error when a later statement fails', async () => {
    expect(await same('call wire_proc(1)')).toMatchObject({ fields: [], rowCount: 0 });
    await same('call wire_proc(?)', [2]);
    await same('call wire_proc_sets()');
    expect(await same('call wire_proc_fail()')).toMatchObject({ error: { errno: 1644, sqlState: '45000', message: 'wire: boom' } });
    await same('call wire_proc_fail()', []);
  });

  it('joins 16 MiB continuation packets, text and binary', async () => {
    // 16777216 bytes: the cell's length needs 8 bytes, so the row's first byte is 0xFE (not an EOF).
    for (const n of [16777211, 16777212, 16777216]) {
      const text = await same(`select repeat('a', ${n}) as r, 7 as k`);
      expect(text.rows?.[0][1].r).toHaveLength(`string:`.length + n);
      expect(lastAnswer.includes(Buffer.from([0xff, 0xff, 0xff]))).toBe(true); // a continued packet
      await same('select repeat(?, ?) as r, ? as k', ['a', n, 7]);
      expect(lastDecoded).toMatchObject({ rows: [{ k: 7 }] });
    }
    await rawQuery(admin, 'drop table if exists wire_bigrow');
    await rawQuery(admin, 'create table wire_bigrow (id int, b longblob)');
    await rawQuery(admin, `insert into wire_bigrow values (1, repeat(x'c3', 16777210)), (2, x'01')`);
    await same('select * from wire_bigrow order by id');
    await same('select * from wire_bigrow where id > ? order by id', [0]);
    const d = lastDecoded as DecodedMysqlResult;
    const cell = d.rows[0].b as Buffer;
    expect(cell.buffer.byteLength).toBe(cell.byteLength); // its own bytes, not a view into the answer
  });

  it('makes a column named __proto__ an own property (the driver path loses its connection on such a column)', async () => {
    for (const params of [undefined, [1]]) {
      const sql = params === undefined ? 'select 1 as __proto__, 2 as a, 3 as a' : 'select ? as __proto__, 2 as a, 3 as a';
      const b = await viaWire(sql, params);
      const row = (lastDecoded as DecodedMysqlResult).rows[0];
      expect(Object.getPrototypeOf(row)).toBe(Object.prototype);
      expect(Object.getOwnPropertyDescriptor(row, '__proto__')?.value).toBe(1);
      expect(b.rows?.[0][0]).toEqual(['__proto__', 'a']);
      expect(row.a).toBe(3);
      expect(({} as Record<string, unknown>).a).toBeUndefined();
    }
  });
});
