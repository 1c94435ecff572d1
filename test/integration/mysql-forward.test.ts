/**
 * Forwarded statements on the real MariaDB (issue 8): plain statements travel as COM_QUERY /
 * COM_STMT_EXECUTE packets the calling thread encodes and whose answers it decodes, and give
 * exactly what the mysql2 path gives (`forwardStatements: false`, same run): values of every type
 * both ways, CALL, errors, insertId, large results; what the server will not prepare runs as a
 * plain query; a plain START TRANSACTION does not leak; limits, a killed session and pipelining
 * behave as on the other path. Cell-by-cell decoding of every type: mysql-wire.test.ts.
 */
import type { MessagePort } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Broker, type BrokerError } from 'threadbroker';
import { connect } from 'threadbroker/worker';
import { Admin, waitFor } from '../helpers/core-harness.js';
import { BROKER_USER, KINDS, brokerUrlOf } from '../helpers/test-setup.js';

const TABLE = `fwd_${BROKER_USER}`;
const PROC = `fwd_proc_${BROKER_USER}`;

function start(forwardStatements: boolean, extra: Record<string, unknown> = {}): Promise<Broker> {
  return Broker.start({ databases: { m: { driver: 'mysql', url: brokerUrlOf('mysql'), max: 2, forwardStatements, ...extra } } });
}

/** A value with its exact type, so `toEqual` tells 1 from '1', -0 from 0, Buffer from Uint8Array and invalid Dates apart. */
function tag(v: unknown): string {
  if (v === null) return 'null';
  if (v instanceof Date) return `Date:${Number.isNaN(v.getTime()) ? 'Invalid' : v.toISOString()}`;
  if (v instanceof Uint8Array) return `bytes:${Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('hex')}`;
  if (typeof v === 'number') return `number:${Object.is(v, -0) ? '-0' : String(v)}`;
  if (typeof v === 'object') return `${typeof v}:${JSON.stringify(v)}`;
  return `${typeof v}:${String(v)}`;
}
const tagged = (r: { rows: Record<string, unknown>[]; rowCount: number; fields: unknown[]; insertId?: unknown }) => ({
  rows: r.rows.map((row) => Object.fromEntries(Object.entries(row).map(([k, v]) => [k, tag(v)]))),
  rowCount: r.rowCount,
  fields: r.fields,
  insertId: r.insertId === undefined ? 'none' : tag(r.insertId),
});
const outcome = (p: Promise<{ rows: Record<string, unknown>[]; rowCount: number; fields: unknown[]; insertId?: unknown }>) =>
  p.then(tagged, (e: BrokerError) => ({ code: e.code, errno: e.errno, sqlState: e.sqlState, constraint: e.constraint, message: e.message }));

/** The requests a broker's client sends for `run`. */
async function sentBy(broker: Broker, run: (db: Awaited<ReturnType<typeof connect>>) => Promise<unknown>): Promise<{ t?: string; m?: unknown; p?: number; params?: unknown }[]> {
  const port = broker.port();
  const sent: unknown[] = [];
  const recording = {
    postMessage: (v: unknown) => { sent.push(...(Array.isArray(v) ? v : [v])); port.postMessage(v); },
    on: (e: string, l: (v: unknown) => void) => port.on(e as 'message', l),
    off: (e: string, l: (v: unknown) => void) => port.off(e as 'message', l),
    close: () => port.close(),
    ref: () => port.ref(),
    unref: () => port.unref(),
    start: () => port.start(),
  };
  const db = await connect(recording as unknown as MessagePort);
  await run(db);
  db.close();
  return (sent as { t?: string }[]).filter((m) => m.t !== 'hello');
}

describe.runIf(KINDS.includes('mysql'))('mysql: forwarded statements', () => {
  let fwd: Broker;
  let direct: Broker;
  let admin: Admin;

  beforeAll(async () => {
    admin = await new Admin('mysql').open();
    await admin.rows(`drop table if exists ${TABLE}`);
    await admin.rows(`create table ${TABLE} (id int auto_increment primary key, v varchar(20) unique, n int)`);
    await admin.rows(`drop procedure if exists ${PROC}`);
    await admin.rows(`create procedure ${PROC}(x int) begin select x as a, 'one' as b; select x + 1 as c; end`);
    await admin.rows(`grant all on ${TABLE} to ${BROKER_USER}`).catch(() => undefined);
    await admin.rows(`grant execute on procedure ${PROC} to ${BROKER_USER}`).catch(() => undefined);
    fwd = await start(true);
    direct = await start(false);
  });

  afterAll(async () => {
    await fwd?.close();
    await direct?.close();
    await admin.rows(`drop table if exists ${TABLE}`);
    await admin.rows(`drop procedure if exists ${PROC}`);
    await admin.close();
  });

  it('travel as packets (`fq`: COM_QUERY without values, COM_STMT_EXECUTE with them) unless forwardStatements is false', async () => {
    const [text, exec] = await sentBy(fwd, async (db) => {
      await db.query('m', 'select 1 as x');
      await db.query('m', 'select ? as x', [1]);
    });
    expect(text).toMatchObject({ t: 'fq', sql: 'select 1 as x' });
    expect((text.m as Uint8Array)[4]).toBe(0x03);
    expect(exec).toMatchObject({ t: 'fq', sql: 'select ? as x', p: 1 });
    expect((exec.m as Uint8Array)[4]).toBe(0x17);
    const [plain] = await sentBy(direct, (db) => db.query('m', 'select ? as x', [1]));
    expect(plain).toMatchObject({ t: 'q', params: [1] });
    // Values the binary protocol cannot carry as the text protocol writes them go as plain queries.
    const [list] = await sentBy(fwd, (db) => db.query('m', 'select 1 in (?) as x', [[1, 2]]));
    expect(list).toMatchObject({ t: 'q', params: [[1, 2]] });
  });

  it('read and bind values of every kind exactly as the mysql2 path, as text and as binary', async () => {
    const cases: [string, unknown[]?][] = [
      ['select 1 as a, -0.0 as b, 1.5 as c, 1e300 as d, null as e, \'héllo 😀\' as f, x\'00ff\' as g, 9007199254740993 as h, -9007199254740993 as i, 18446744073709551615 as j'],
      ["select cast('2024-02-29' as date) as a, cast('2024-02-29 23:59:58.123456' as datetime(6)) as b, cast('-838:59:59.5' as time(1)) as c, cast('0000-00-00 00:00:00' as datetime) as d, json_object('k', json_array(1)) as f, b'101' as g"],
      ['select ? as a, ? as b, ? as c, ? as d, ? as e, ? as f, ? as g, ? as h, ? as i, ? / 2 as j, concat(?) as k', [1, -5.25, 'x\'y"\\', null, true, new Date(Date.UTC(2024, 1, 29, 1, 2, 3, 4)), Buffer.from([0, 1, 255]), 12345678901234567890n, 1e-7, 7, 8]],
      ['select cast(? as float) as a, cast(? as double) as b, cast(? as decimal(10,3)) as c, cast(? as datetime(3)) as d, cast(? as date) as e, cast(? as time) as f', [0.1, 1 / 3, '12.3456', '2001-01-01 00:00:00.5', '1999-12-31', '-01:02:03']],
      ['select cast(? as signed) as a, cast(? as unsigned) as b, ? is null as c', ['-9007199254740993', '18446744073709551615', null]],
    ];
    for (const [sql, params] of cases) {
      const a = await outcome(fwd.connect().query('m', sql, params));
      const b = await outcome(direct.connect().query('m', sql, params));
      expect(a, sql).toEqual(b);
      expect(a, sql).toHaveProperty('rowCount', 1);
    }
  });

  it('CALL, empty results, writes with insertId and rowCount, and server errors give what mysql2 gives', async () => {
    const statements: [string, unknown[]?][] = [
      [`call ${PROC}(1)`],
      [`call ${PROC}(?)`, [5]],
      [`select * from ${TABLE} where false`],
      [`select * from ${TABLE} where id = ?`, [-1]],
      [`insert into ${TABLE} (v, n) values ('a', 1), ('b', 2)`],
      [`insert into ${TABLE} (v, n) values (?, ?)`, ['c', 3]],
      [`insert into ${TABLE} (v, n) values (?, ?)`, ['c', 3]], // duplicate: constraint name
      [`update ${TABLE} set n = n + 1 where n > ?`, [1]],
      ['select * from no_such_table_anywhere'],
      ['selec 1'],
      ['select ? from dual where ? = ?', [1, 2]], // fewer values than placeholders
      ['select cast(? as char) as a', ['x']],
      [`delete from ${TABLE}`],
    ];
    await admin.rows(`alter table ${TABLE} auto_increment = 1`);
    const a: unknown[] = [];
    for (const [sql, params] of statements) a.push(await outcome(fwd.connect().query('m', sql, params)));
    await admin.rows(`delete from ${TABLE}`);
    await admin.rows(`alter table ${TABLE} auto_increment = 1`);
    const b: unknown[] = [];
    for (const [sql, params] of statements) b.push(await outcome(direct.connect().query('m', sql, params)));
    expect(a).toEqual(b);
    expect(a[5]).toMatchObject({ rowCount: 1, insertId: 'number:3' });
    expect(a[6]).toMatchObject({ code: 'DATABASE_ERROR', errno: 1062, sqlState: '23000', constraint: 'v' });
  });

  it('a column named __proto__ is an own property of the row, never its prototype: forwarded, through mysql2, and in a reservation', async () => {
    // Through mysql2 (forwardStatements: false, and every reserved statement) such a name used to
    // end the connection: its generated row parsers refuse it even for rows as arrays.
    const reserved = await fwd.connect().reserve('m');
    try {
      const runners: [string, (sql: string, params?: unknown[]) => Promise<{ rows: unknown[] }>][] = [
        ['forwarded', (sql, params) => fwd.connect().query('m', sql, params)],
        ['mysql2', (sql, params) => direct.connect().query('m', sql, params)],
        ['reserved', (sql, params) => reserved.query(sql, params)],
      ];
      for (const [path, run] of runners) {
        for (const params of [undefined, [1]]) {
          for (const name of ['__proto__', '__defineGetter__', 'constructor']) {
            const sql = params ? `select ? as \`${name}\`, 2 as a` : `select 1 as \`${name}\`, 2 as a`;
            const [row] = (await run(sql, params)).rows as Record<string, unknown>[];
            expect(Object.getPrototypeOf(row), `${path} ${sql}`).toBe(Object.prototype);
            expect(Object.getOwnPropertyDescriptor(row, name)?.value, `${path} ${sql}`).toBe(1);
            expect(row.a).toBe(2);
          }
        }
      }
      // The reserved connection survived all of it.
      expect((await reserved.query('select 3 as x')).rows).toEqual([{ x: 3 }]);
    } finally {
      await reserved.release();
    }
  });

  it('statements the server will not prepare, or whose placeholders do not match the values, run as plain queries with the same answer', async () => {
    const db = fwd.connect();
    // SHOW … LIKE ? cannot be prepared; a LIMIT placeholder count that differs from the values falls back too.
    for (const [sql, params] of [['show variables like ?', ['version_comment']], ['select ? as a, ? as b', [1]], ['select ? as a', [1, 2]]] as [string, unknown[]][]) {
      const sent = await sentBy(fwd, (c) => c.query('m', sql, params).catch(() => undefined));
      expect(sent.map((m) => m.t), sql).toEqual(['fq', 'q']);
      expect(await outcome(db.query('m', sql, params))).toEqual(await outcome(direct.connect().query('m', sql, params)));
    }
    // The broker said the text cannot be forwarded for good: the thread sends it as a plain query from then on.
    const again = await sentBy(fwd, async (c) => {
      await c.query('m', 'select ? as a', [1, 2]);
      await c.query('m', 'select ? as a', [1, 2]);
    });
    expect(again.map((m) => m.t)).toEqual(['fq', 'q', 'q']);
  });

  it('a statement prepared before a DDL change runs again after it, with the new columns', async () => {
    const one = await start(true, { max: 1 });
    try {
      const db = one.connect();
      const sql = `select * from ${TABLE} where id > ?`;
      await db.query('m', `insert into ${TABLE} (v, n) values ('x', 1)`);
      expect(Object.keys((await db.query('m', sql, [0])).rows[0])).toEqual(['id', 'v', 'n']);
      await admin.rows(`alter table ${TABLE} add column extra int default 7`);
      const after = await db.query('m', sql, [0]);
      expect(after.rows[0]).toMatchObject({ v: 'x', n: 1, extra: 7 });
    } finally {
      await one.close();
      await admin.rows(`alter table ${TABLE} drop column extra`).catch(() => undefined);
      await admin.rows(`delete from ${TABLE}`);
    }
  });

  it('results larger than one socket read, and a row over 16 MiB (continuation packets), arrive whole', async () => {
    const sql = "select seq as id, concat(repeat('x', 50), seq) as v from seq_1_to_30000";
    const a = await fwd.connect().query<{ id: number; v: string }>('m', sql);
    const b = await direct.connect().query<{ id: number; v: string }>('m', sql);
    expect(a.rowCount).toBe(30000);
    expect(a.rows).toEqual(b.rows);
    for (const params of [undefined, [16777212]]) {
      const big = await fwd.connect().query<{ s: string; n: number }>('m', params ? 'select repeat(\'a\', ?) as s, 5 as n' : "select repeat('a', 16777212) as s, 5 as n", params);
      expect(big.rows[0].s.length).toBe(16777212);
      expect(big.rows[0].n).toBe(5);
    }
  });

  it('a plain START TRANSACTION is rolled back when its connection comes back, so the next statement autocommits', async () => {
    const one = await start(true, { max: 1 });
    try {
      const db = one.connect();
      await db.query('m', 'start transaction');
      await db.query('m', `insert into ${TABLE} (v, n) values (?, ?)`, ['kept', 2]);
      expect(await admin.scalar(`select count(*) from ${TABLE} where v = 'kept'`)).toBe(1);
      await db.query('m', 'set autocommit = 0');
      await db.query('m', `insert into ${TABLE} (v, n) values (?, ?)`, ['kept2', 3]);
      expect(await admin.scalar(`select count(*) from ${TABLE} where v = 'kept2'`)).toBe(1);
    } finally {
      await one.close();
      await admin.rows(`delete from ${TABLE}`);
    }
  });

  it('the statement limits hold: RESULT_TOO_LARGE, QUERY_TIMEOUT, and the connection is replaced', async () => {
    const limited = await start(true, { max: 1, maxRows: 10, queryTimeoutMillis: 300 });
    try {
      const db = limited.connect();
      const id = async (): Promise<number> => Number((await db.query<{ id: number }>('m', 'select connection_id() as id')).rows[0].id);
      const before = await id();
      await expect(db.query('m', 'select seq from seq_1_to_11')).rejects.toMatchObject({ code: 'RESULT_TOO_LARGE' });
      const after = await id();
      expect(after).not.toBe(before);
      await expect(db.query('m', 'select sleep(?)', [5])).rejects.toMatchObject({ code: 'QUERY_TIMEOUT' });
      expect((await db.query('m', 'select 1 as one')).rows).toEqual([{ one: 1 }]);
      // The server runs the abandoned sleep until it notices the closed socket: end it, so no
      // session of the broker's user outlives this test.
      const sleeping = await admin.rows(`select id from information_schema.processlist where user = ? and info like 'select sleep%'`, [BROKER_USER]);
      for (const r of sleeping) await admin.rows(`kill ${Number(r.id)}`).catch(() => undefined);
      await waitFor('the abandoned session to end', async () => (await admin.scalar(`select count(*) from information_schema.processlist where user = ? and info like 'select sleep%'`, [BROKER_USER])) === 0);
      expect(limited.stats().databases.m).toMatchObject({ busy: 0, waiting: 0 });
    } finally {
      await limited.close();
    }
  });

  it('a session the server kills answers CONNECTION_LOST or its error, and the next statement gets a new one', async () => {
    const one = await start(true, { max: 1 });
    try {
      const db = one.connect();
      const id = Number((await db.query<{ id: number }>('m', 'select connection_id() as id')).rows[0].id);
      const sleeping = db.query('m', 'select sleep(5)').then(() => 'finished', (e: BrokerError) => e.code);
      await waitFor('the sleep to start', async () => (await admin.scalar(`select count(*) from information_schema.processlist where id = ${id} and info like 'select sleep%'`)) === 1);
      await admin.rows(`kill ${id}`);
      expect(['CONNECTION_LOST', 'DATABASE_ERROR']).toContain(await sleeping);
      expect((await db.query('m', 'select 1 as one')).rows).toEqual([{ one: 1 }]);
    } finally {
      await one.close();
    }
  });

  it('LOAD DATA LOCAL is refused without the server reading any file of this process', async () => {
    const err = (await fwd.connect().query('m', `load data local infile '/etc/hostname' into table ${TABLE}`).catch((e: BrokerError) => e)) as BrokerError;
    expect(err).toMatchObject({ code: 'DATABASE_ERROR' });
    expect(await admin.scalar(`select count(*) from ${TABLE}`)).toBe(0);
    expect((await fwd.connect().query('m', 'select 1 as one')).rows).toEqual([{ one: 1 }]);
  });

  it('pipelined statements each get their own answer: values, errors and writes interleaved on 2 connections', async () => {
    const two = await start(true, { max: 2 });
    try {
      const db = two.connect();
      const calls = Array.from({ length: 60 }, (_, i) => {
        if (i % 7 === 3) return db.query('m', 'select * from no_such_table where id = ?', [i]).then(() => 'no error', (e: BrokerError) => `${e.code} ${e.errno}`);
        if (i % 11 === 5) return db.query('m', `insert into ${TABLE} (v, n) values (?, ?)`, [`w${i}`, i]).then((r) => `inserted ${r.rowCount}`);
        if (i % 2 === 0) return db.query<{ v: number }>('m', 'select ? * 2 as v', [i]).then((r) => r.rows[0].v);
        return db.query<{ v: string }>('m', `select '${i}' as v`).then((r) => r.rows[0].v);
      });
      const got = await Promise.all(calls);
      const want = Array.from({ length: 60 }, (_, i) => {
        if (i % 7 === 3) return 'DATABASE_ERROR 1146';
        if (i % 11 === 5) return 'inserted 1';
        return i % 2 === 0 ? i * 2 : String(i);
      });
      expect(got).toEqual(want);
      expect(await admin.scalar(`select count(*) from ${TABLE}`)).toBe(want.filter((w) => w === 'inserted 1').length);
      expect(two.stats().databases.m).toMatchObject({ busy: 0, waiting: 0 });
    } finally {
      await two.close();
      await admin.rows(`delete from ${TABLE}`);
    }
  });
});
