/**
 * Issue 8: statements with parameters run through mysql2's binary protocol (`execute`) and give
 * exactly what the text protocol gave. The broker comes from src/ (these tests see the driver
 * without a build); every comparison runs one statement with parameters (binary) and the same
 * statement as mysql2's text formatting writes it, without parameters (text).
 */
import mysql from 'mysql2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Db } from '../../src/client/db.js';
import { MYSQL_MAX_PREPARED_STATEMENTS, useFastPath } from '../../src/drivers/mysql/mysql-execute.js';
import { Broker, BrokerError } from '../../src/index.js';
import { Admin, waitFor } from '../helpers/server-admin.js';
import { BROKER_USER, KINDS, configFor } from '../helpers/test-setup.js';

const T = `mx_${BROKER_USER}`;

/** A value with its exact type, so `toEqual` tells 1 from '1', -0 from 0, Buffer from Uint8Array, and invalid Dates apart. */
function tag(v: unknown): string {
  if (v === null) return 'null';
  if (v instanceof Date) return `Date:${Number.isNaN(v.getTime()) ? 'Invalid' : v.toISOString()}`;
  if (v instanceof Uint8Array) return `${v.constructor.name}:${Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('hex')}`;
  if (typeof v === 'number') return `number:${Object.is(v, -0) ? '-0' : String(v)}`;
  return `${typeof v}:${String(v)}`;
}

function tagRows(rows: Record<string, unknown>[]): Record<string, string>[] {
  return rows.map((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, tag(v)])));
}

/** The text protocol's SQL for `sql` with `params`, as the driver's text path writes it. */
function inline(sql: string, params: unknown[]): string {
  return mysql.format(sql, params as Parameters<typeof mysql.format>[1], true, 'Z');
}

/** Outcome of a statement: its tagged result, or its error's stable fields. */
async function outcome(db: Db, sql: string, params?: unknown[]): Promise<unknown> {
  try {
    const r = await db.query('db', sql, params);
    return { rows: tagRows(r.rows), fields: r.fields.map((f) => f.name), rowCount: r.rowCount, insertId: r.insertId === undefined ? undefined : tag(r.insertId) };
  } catch (err) {
    if (!(err instanceof BrokerError)) throw err;
    return { code: err.code, errno: err.errno, sqlState: err.sqlState, constraint: err.constraint, message: err.message };
  }
}

/** A session counter of the broker's one connection (`max: 1`), read through the text protocol. */
async function status(db: Db, name: string): Promise<number> {
  const r = await db.query<{ Value: string }>('db', `show session status like '${name}'`);
  return Number(r.rows[0].Value);
}

/** A seeded PRNG (mulberry32), so a failure can be replayed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe.runIf(KINDS.includes('mysql'))('mysql: the binary protocol path', () => {
  it('builds its Execute commands itself with this mysql2 (the public execute is the fallback)', () => {
    expect(useFastPath()).toBe(true);
  });
});

// Both paths: the Execute command built here (fast) and mysql2's public execute (fallback).
for (const fast of [true, false]) describe.runIf(KINDS.includes('mysql'))(`mysql (${fast ? 'fast path' : 'public execute'}): statements with parameters run through the binary protocol`, () => {
  let broker: Broker;
  let db: Db;
  const admin = new Admin('mysql');

  beforeAll(async () => {
    useFastPath(fast);
    broker = await Broker.start(configFor('mysql', { max: 1 }));
    db = broker.connect();
  });
  afterAll(async () => {
    useFastPath(true);
    await admin.exec(`drop table if exists ${T}_types`, `drop table if exists ${T}_reals`, `drop table if exists ${T}_ddl`, `drop table if exists ${T}_k`, `drop table if exists ${T}_late`, `drop procedure if exists ${T}_proc`);
    await admin.close();
    await broker.close();
  });

  it('gives, for rows of every type, exactly the values the text protocol gives', async () => {
    // Written by the admin with an empty sql_mode, so zero dates and zero months can be stored.
    await admin.exec(
      `drop table if exists ${T}_types`,
      `create table ${T}_types (id int primary key,
        ti tinyint, tu tinyint unsigned, b tinyint(1), si smallint, mi mediumint, i int, iu int unsigned,
        bi bigint, bu bigint unsigned, dc decimal(10,2), dw decimal(65,30),
        f float, f3 float(7,3), d double, d2 double(10,2),
        dt date, dtm datetime, dtm6 datetime(6), ts timestamp(3) null, tm time, tm6 time(6), tm3 time(3), yr year,
        c char(5), vc varchar(100), tx text, en enum('a','b'), st set('x','y'),
        bn binary(4), vb varbinary(10), bl blob, bt bit(10), bt1 bit(1),
        js json, ip inet6, uu uuid, geo point null)`,
    );
    await admin.rows(`set session sql_mode = ''`);
    await admin.exec(
      `insert into ${T}_types values (1, -5, 200, 1, -300, 70000, -2000000000, 4000000000,
        9007199254740993, 18446744073709551615, 12.34, '1234567890.123456789012345678901234567890',
        1.1, 3.142, 0.1e0 + 0.2e0, 2.28,
        '2024-01-02', '2024-01-02 03:04:05', '2024-01-02 03:04:05.678999', '2024-01-02 03:04:05.678', '12:34:56', '-01:02:03.500000', '00:00:00.100', 2024,
        'ab', 'héllo ☃ \\\\ '' "', 'text', 'b', 'x,y',
        x'00ff', x'0102', x'deadbeef', b'1010101010', b'1',
        '{"a": [1, 2.5, "x"], "big": 12345678901234567890}', '::1', '123e4567-e89b-12d3-a456-426614174000', point(1, 2))`,
      `insert into ${T}_types (id) values (2)`,
      // Zero and partial-zero dates, years below 100, a FLOAT tie, 16-digit doubles past 2^53.
      `insert into ${T}_types values (3, 0, 0, 0, 0, 0, 0, 0,
        -9007199254740993, 0, -0.01, '-0.000000000000000000000000000001',
        24432.25, -0.001, 950972468400.9657, -0.01,
        '0000-00-00', '0000-00-00 00:00:00', '0050-01-02 03:04:05.000001', '0000-00-00 00:00:00', '838:59:59', '00:00:00', '-00:00:00.001', 0,
        '', '', '', 'a', '',
        x'00000000', x'', x'', b'0', b'0',
        '[]', '::', '00000000-0000-0000-0000-000000000000', null)`,
      `insert into ${T}_types values (4, 127, 255, 0, 32767, -8388608, 2147483647, 0,
        -9223372036854775808, 9223372036854775808, 99999999.99, '-99999999999999999999999999999999999.999999999999999999999999999999',
        1234565, 9999.999, 9295.427508433419, 12345678.91,
        '9999-12-31', '0001-01-01 00:00:00', '2024-00-15 00:00:00', '2038-01-19 03:14:07.999', '-838:59:59', '00:00:00.000001', '100:00:00.001', 1901,
        'zzzzz', 'x', repeat('y', 1000), 'a', 'x',
        x'ffffffff', x'ff', x'00', b'1111111111', b'1',
        'null', 'ffff::1', 'ffffffff-ffff-ffff-ffff-ffffffffffff', point(-1.5, 1e300))`,
      `insert into ${T}_types (id, f, d, dtm, dtm6, tm6) values (5, 3.4e38, 1.7976931348623157e308, '0099-12-31 23:59:59', '0099-12-31 23:59:59.5', '-00:00:01.5'),
        (6, 1.17549435e-38, 5e-324, '0100-01-01 00:00:00', '9999-12-31 23:59:59.999999', '24:00:00'),
        (7, -24432.25, -1.2345678901234567e-300, '1970-01-01 00:00:00', '1969-12-31 23:59:59.999999', '00:00:00'),
        (8, 0.000030864628, 9007199254740.993, '2024-05-00 10:00:00', '2000-02-29 12:00:00', '12:00:00.000000')`,
    );
    await admin.rows(`set session sql_mode = default`);

    const before = await status(db, 'Com_stmt_execute');
    for (let id = 1; id <= 8; id++) {
      const sql = `select * from ${T}_types where id = ?`;
      const binary = await db.query('db', sql, [id]);
      const text = await db.query('db', inline(sql, [id]));
      expect(binary.rows).toHaveLength(1);
      expect(binary.fields).toEqual(text.fields);
      expect({ id, row: tagRows(binary.rows) }).toEqual({ id, row: tagRows(text.rows) });
    }
    // The binary protocol answered (one execute per row; the status reads are text).
    expect(await status(db, 'Com_stmt_execute')).toBe(before + 8);
  });

  it('gives the text protocol FLOAT and DOUBLE values for random reals (rounding, 16-17 digit texts, ties)', async () => {
    const rnd = prng(8);
    const bits = new DataView(new ArrayBuffer(8));
    const real = (): number => {
      const k = rnd();
      if (k < 0.3) {
        bits.setUint32(0, Math.floor(rnd() * 2 ** 32));
        bits.setUint32(4, Math.floor(rnd() * 2 ** 32));
        const v = bits.getFloat64(0);
        return Number.isFinite(v) ? v : 1;
      }
      if (k < 0.5) return (9 + rnd()) * 10 ** Math.floor(rnd() * 15); // leading 9s: 16-digit texts past 2^53
      if (k < 0.7) return Math.round(rnd() * 2e6 - 1e6) / 1000;
      if (k < 0.8) return (Math.floor(rnd() * 2e6) + 0.5) / 2 ** Math.floor(rnd() * 8); // exact binary fractions: ties
      return (rnd() - 0.5) * 10 ** Math.floor(rnd() * 40 - 20);
    };
    const fit = (v: number, max: number): number => (Math.abs(v) < max ? v : v % max);
    await admin.exec(`drop table if exists ${T}_reals`, `create table ${T}_reals (id int primary key, d double, f float, d4 double(30,4), f3 float(12,3), d1 double(6,1))`);
    const N = 3000;
    for (let lo = 0; lo < N; lo += 500) {
      const values: string[] = [];
      for (let id = lo; id < lo + 500; id++) {
        const v = real();
        values.push(`(${id}, ${v}, ${fit(v, 3e38)}, ${fit(v, 1e25)}, ${fit(v, 1e8)}, ${fit(v, 9999)})`);
      }
      await admin.exec(`insert into ${T}_reals values ${values.join(', ')}`);
    }
    const sql = `select id, d, f, d4, f3, d1, d * 3, f / 7, -d from ${T}_reals where id >= ? order by id`;
    const binary = await db.query('db', sql, [0]);
    const text = await db.query('db', inline(sql, [0]));
    expect(binary.rows).toHaveLength(N);
    expect(tagRows(binary.rows)).toEqual(tagRows(text.rows));
  });

  it('binds each parameter as the literal the text protocol writes for it', async () => {
    const values: unknown[] = [
      0, -0, 1, -1, 5, 2147483647, 2147483648, -2147483649, 9007199254740991, -9007199254740991, 2 ** 60,
      1.5, -0.25, 0.1, 0.30000000000000004, 1e-7, 1.5e-10, 123.456, 1e21, 2e300, 5e-324, NaN, Infinity,
      true, false, 'abc', "it's \\ \"q\" ?", '', '1.5', 'héllo ☃', null, undefined,
      10n, 2n ** 63n - 1n, -(2n ** 63n), 2n ** 63n, 2n ** 64n - 1n, 2n ** 64n,
      new Date(Date.UTC(2024, 0, 2, 3, 4, 5, 678)), new Date(NaN), new Date(Date.UTC(50, 0, 1)), new Date(Date.UTC(-5, 0, 1)),
      Buffer.from([0, 255, 39]), new Uint8Array([65, 66]), new Uint8Array(0), [1, 2], { a: 1 },
    ];
    const exprs = ['?', '? + 1', '? / 2', "concat(?, '')", '? * 1.5e0', 'coalesce(?, 0)', '? = 1', 'hex(?)', 'length(?)', 'cast(? as datetime(3))'];
    // Values the text protocol writes as something no binary type reproduces: they stay on text.
    const textOnly = new Set<unknown>([2 ** 60, NaN, Infinity, 2n ** 64n, values.at(-2), values.at(-1)]);
    for (const v of values) {
      const before = await status(db, 'Com_stmt_execute');
      for (const e of exprs) {
        const sql = `select ${e} as a`;
        expect({ sql, v: tag(v), got: await outcome(db, sql, [v]) }).toEqual({ sql, v: tag(v), got: await outcome(db, inline(sql, [v])) });
      }
      expect({ v: tag(v), executed: (await status(db, 'Com_stmt_execute')) - before }).toEqual({ v: tag(v), executed: textOnly.has(v) ? 0 : exprs.length });
    }
  });

  it('runs as text, and remembers, a statement the server cannot prepare', async () => {
    const cases: [string, unknown[]][] = [
      ['show variables like ?', ['version_comment']], // 1064 when prepared
      ['execute immediate ?', ['select 1 as x']], // ER_UNSUPPORTED_PS
    ];
    for (const [sql, params] of cases) {
      // EXECUTE IMMEDIATE prepares on the server by itself: count what the text statement adds.
      const p0 = await status(db, 'Com_stmt_prepare');
      const expected = await outcome(db, inline(sql, params));
      const own = (await status(db, 'Com_stmt_prepare')) - p0;
      const p1 = await status(db, 'Com_stmt_prepare');
      expect(await outcome(db, sql, params)).toEqual(expected);
      expect(await outcome(db, sql, params)).toEqual(expected);
      // One refused prepare, then none: the statement is known to be text-only.
      expect(await status(db, 'Com_stmt_prepare')).toBe(p1 + 1 + 2 * own);
    }
    // A placeholder count that does not match the parameters behaves as the text protocol does.
    for (const [sql, params] of [['select ? as a, ? as b', [1]], ['select ? as a', [1, 2]], ['select 1 as a', [1]]] as [string, unknown[]][]) {
      expect(await outcome(db, sql, params)).toEqual(await outcome(db, inline(sql, params)));
    }
  });

  it('reports a real error the same way, and does not remember the statement as text-only', async () => {
    await admin.exec(`drop table if exists ${T}_late`);
    const sql = `select v from ${T}_late where id = ?`;
    const err = await outcome(db, sql, [1]);
    expect(err).toMatchObject({ code: 'DATABASE_ERROR', errno: 1146, sqlState: '42S02' });
    expect(err).toEqual(await outcome(db, inline(sql, [1])));
    await admin.exec(`create table ${T}_late (id int primary key, v text)`, `insert into ${T}_late values (1, 'a')`);
    const executes = await status(db, 'Com_stmt_execute');
    expect((await db.query('db', sql, [1])).rows).toEqual([{ v: 'a' }]);
    expect(await status(db, 'Com_stmt_execute')).toBe(executes + 1);
  });

  it('keeps at most MYSQL_MAX_PREPARED_STATEMENTS prepared statements per connection', async () => {
    // A fresh connection: its prepare and close counters are exactly its live statements.
    const fresh = await Broker.start(configFor('mysql', { max: 1 }));
    try {
      const fdb = fresh.connect();
      const globalBefore = Number((await admin.rows(`show global status like 'Prepared_stmt_count'`))[0].Value);
      const n = MYSQL_MAX_PREPARED_STATEMENTS * 3;
      let peak = 0;
      for (let round = 0; round < 2; round++) {
        for (let i = 0; i < n; i++) {
          const r = await fdb.query<{ x: number }>('db', `select ? + ${i} as x`, [round]);
          expect(r.rows).toEqual([{ x: round + i }]);
          if (i % 16 === 0) peak = Math.max(peak, (await status(fdb, 'Com_stmt_prepare')) - (await status(fdb, 'Com_stmt_close')));
        }
      }
      const prepared = await status(fdb, 'Com_stmt_prepare');
      const live = prepared - (await status(fdb, 'Com_stmt_close'));
      expect(prepared).toBe(2 * n); // every statement prepared once per round: the oldest were closed
      expect(Math.max(peak, live)).toBe(MYSQL_MAX_PREPARED_STATEMENTS);
      const globalAfter = Number((await admin.rows(`show global status like 'Prepared_stmt_count'`))[0].Value);
      expect(globalAfter - globalBefore).toBeLessThanOrEqual(MYSQL_MAX_PREPARED_STATEMENTS);
    } finally {
      await fresh.close();
    }
  });

  it('keeps working when the table changes shape between executions (DDL)', async () => {
    await admin.exec(`drop table if exists ${T}_ddl`, `create table ${T}_ddl (id int primary key, v varchar(10))`, `insert into ${T}_ddl values (1, 'a'), (2, 'b')`);
    const sel = `select * from ${T}_ddl where id = ?`;
    expect((await db.query('db', sel, [1])).rows).toEqual([{ id: 1, v: 'a' }]);
    await db.query('db', `alter table ${T}_ddl add column w int default 7`);
    expect((await db.query('db', sel, [1])).rows).toEqual([{ id: 1, v: 'a', w: 7 }]);
    await db.query('db', `alter table ${T}_ddl drop column v`);
    await db.query('db', `update ${T}_ddl set w = null`);
    await db.query('db', `alter table ${T}_ddl modify w datetime(3) null`);
    await db.query('db', `update ${T}_ddl set w = ? where id = ?`, [new Date(Date.UTC(2024, 1, 3, 4, 5, 6, 789)), 1]);
    expect(tagRows((await db.query('db', sel, [1])).rows)).toEqual(tagRows((await db.query('db', inline(sel, [1]))).rows));
    expect((await db.query('db', sel, [1])).rows).toEqual([{ id: 1, w: new Date(Date.UTC(2024, 1, 3, 4, 5, 6, 789)) }]);
    await db.query('db', `drop table ${T}_ddl`);
    await db.query('db', `create table ${T}_ddl (id int primary key, z text)`);
    await db.query('db', `insert into ${T}_ddl values (?, ?)`, [1, 'new']);
    expect((await db.query('db', sel, [1])).rows).toEqual([{ id: 1, z: 'new' }]);
  });

  it('keeps errors, insertId, rowCount and the transaction state as the text protocol reports them', async () => {
    await db.query('db', `drop table if exists ${T}_k`);
    await db.query('db', `create table ${T}_k (id bigint auto_increment primary key, u varchar(10), n int, constraint ${T}_uq unique (u))`);
    const ins = `insert into ${T}_k (u, n) values (?, ?)`;
    const a = await db.query('db', ins, ['a', 1]);
    const b = await db.query('db', inline(ins, ['b', 1]));
    expect([a.insertId, a.rowCount, b.insertId, b.rowCount]).toEqual([1, 1, 2, 1]);
    // The same duplicate-key error, constraint name included.
    const dupBinary = await outcome(db, ins, ['a', 2]);
    expect(dupBinary).toMatchObject({ code: 'DATABASE_ERROR', errno: 1062, sqlState: '23000', constraint: `${T}_uq` });
    expect(dupBinary).toEqual(await outcome(db, inline(ins, ['a', 2])));
    expect(await outcome(db, `update ${T}_k set n = ? where n = ?`, [5, 1])).toMatchObject({ rowCount: 2 });
    expect(await outcome(db, `insert into ${T}_k (u, n) values (?, ?)`, ['x', 'not a number'])).toEqual(await outcome(db, inline(ins, ['x', 'not a number'])));
    // A generated key past 2^53 is a bigint on both protocols.
    await db.query('db', `alter table ${T}_k auto_increment = 9007199254740993`);
    expect((await db.query('db', ins, ['big', 1])).insertId).toBe(9007199254740993n);

    // Autocommit switched off by a binary statement is seen, and reset when the reservation ends.
    const two = await Broker.start(configFor('mysql', { max: 2 }));
    try {
      const tdb = two.connect();
      const r = await tdb.reserve('db');
      const session = (await r.query<{ id: number }>('select connection_id() as id')).rows[0].id;
      await r.query('set autocommit = ?', [0]);
      await r.query(ins, ['rb', 1]);
      await r.release();
      expect((await tdb.query('db', `select count(*) as n from ${T}_k where u = ?`, ['rb'])).rows).toEqual([{ n: 0 }]);
      expect((await tdb.query('db', 'select @@autocommit as a, connection_id() as id')).rows).toEqual([{ a: 1, id: session }]);
    } finally {
      await two.close();
    }

    // A procedure's result sets and final status, the same on both protocols.
    await admin.exec(`drop procedure if exists ${T}_proc`, `create procedure ${T}_proc(in k int) begin select k + 1 as x; select 'two' as y; end`);
    await admin.exec(`grant execute on procedure ${T}_proc to '${BROKER_USER}'@'%'`).catch(() => undefined);
    expect(await outcome(db, `call ${T}_proc(?)`, [1])).toEqual(await outcome(db, inline(`call ${T}_proc(?)`, [1])));
  });

  it('applies the statement limits and reports a lost connection on the binary protocol', async () => {
    const limited = await Broker.start(configFor('mysql', { max: 1, maxRows: 5, maxResultBytes: 50_000, queryTimeoutMillis: 300 }));
    try {
      const ldb = limited.connect();
      const rows = await ldb.query('db', 'select seq from seq_1_to_10 where seq > ?', [0]).catch((e: unknown) => e);
      expect(rows).toMatchObject({ code: 'RESULT_TOO_LARGE' });
      expect(await ldb.query('db', "select repeat('x', ?) as s", [100_000]).catch((e: unknown) => e)).toMatchObject({ code: 'RESULT_TOO_LARGE' });
      expect(await ldb.query('db', 'select sleep(?) as s', [3]).catch((e: unknown) => e)).toMatchObject({ code: 'QUERY_TIMEOUT' });
      // The server sleeps on for the closed session: end it, so no session of the broker's login outlives this test.
      await admin.kill(await admin.sessionIds({ like: 'select sleep(?) as s%' }));
      await waitFor('the abandoned session to end', async () => (await admin.sessionIds({ like: 'select sleep(?) as s%' })).length === 0);
      expect((await ldb.query('db', 'select seq from seq_1_to_10 where seq > ?', [7])).rows).toEqual([{ seq: 8 }, { seq: 9 }, { seq: 10 }]);
    } finally {
      await limited.close();
    }
    const pending = db.query('db', 'select sleep(?) as lost', [20]).catch((e: unknown) => e);
    let ids: number[] = [];
    await waitFor('the sleeping statement', async () => (ids = await admin.sessionIds({ like: 'select sleep(?) as lost%' })).length > 0);
    await admin.kill(ids);
    expect(await pending).toMatchObject({ code: 'CONNECTION_LOST' });
    expect((await db.query('db', 'select ? as x', [1])).rows).toEqual([{ x: 1 }]);
  });
});
