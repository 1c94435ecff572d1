/**
 * Forwarded statements on the real PostgreSQL (issue 8): plain statements travel as protocol
 * bytes that the calling thread encodes and decodes, and give exactly what the `pg.Client` path
 * gives (`forwardStatements: false`, same run): values of every type both ways, multi-statement
 * text, errors, results larger than one socket read; a plain BEGIN does not leak; the limits and
 * a killed session behave as on the other path.
 */
import type { MessagePort } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Broker, type BrokerError } from 'threadbroker';
import { connect } from 'threadbroker/worker';
import { PROTOCOL_VERSION } from '../../src/transport/protocol.js';
import { Admin, waitFor } from '../helpers/core-harness.js';
import { BROKER_USER, KINDS, brokerUrlOf } from '../helpers/test-setup.js';

const TABLE = `fwd_${BROKER_USER}`;

function start(forwardStatements: boolean, extra: Record<string, unknown> = {}): Promise<Broker> {
  return Broker.start({ databases: { p: { driver: 'pg', url: brokerUrlOf('pg'), max: 2, forwardStatements, ...extra } } });
}

/** Bytes compare equal whether they crossed as Buffer or Uint8Array. */
function plain(rows: Record<string, unknown>[]): Record<string, unknown>[] {
  return rows.map((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, v instanceof Uint8Array ? [...v] : v])));
}

describe.runIf(KINDS.includes('pg'))('pg: forwarded statements', () => {
  let fwd: Broker;
  let direct: Broker;
  let admin: Admin;

  beforeAll(async () => {
    admin = await new Admin('pg').open();
    await admin.rows(`drop table if exists ${TABLE}`);
    await admin.rows(`create table ${TABLE} (id int primary key, v text)`);
    await admin.rows(`grant all on ${TABLE} to ${BROKER_USER}`);
    fwd = await start(true);
    direct = await start(false);
  });

  afterAll(async () => {
    await fwd?.close();
    await direct?.close();
    await admin.rows(`drop table if exists ${TABLE}`);
    await admin.close();
  });

  it('travel as protocol bytes (`fq` requests, byte answers) unless forwardStatements is false', async () => {
    const seen = async (broker: Broker): Promise<unknown[]> => {
      const port = broker.port();
      const sent: unknown[] = [];
      const recording = {
        postMessage: (v: unknown) => { sent.push(v); port.postMessage(v); },
        on: (e: string, l: (v: unknown) => void) => port.on(e as 'message', l),
        off: (e: string, l: (v: unknown) => void) => port.off(e as 'message', l),
        close: () => port.close(),
        ref: () => port.ref(),
        unref: () => port.unref(),
        start: () => port.start(),
      };
      const db = await connect(recording as unknown as MessagePort);
      await db.query('p', 'select $1::int as x', [1]);
      db.close();
      return sent.filter((m) => (m as { t?: string }).t !== 'hello');
    };
    const [viaBytes] = await seen(fwd);
    expect(viaBytes).toMatchObject({ t: 'fq', db: 'p', sql: 'select $1::int as x' });
    expect((viaBytes as { m: unknown }).m).toBeInstanceOf(Uint8Array);
    const [viaRows] = await seen(direct);
    expect(viaRows).toMatchObject({ t: 'q', db: 'p', sql: 'select $1::int as x', params: [1] });
  });

  it('read and bind every type exactly as the pg.Client path', async () => {
    const sql = `select $1::int2 as a, $2::int4 as b, $3::int8 as c, '9007199254740993'::int8 as big, $4::numeric as d,
      $5::bool as e, $6::date as f, $7::timestamp as g, $8::timestamptz as h, $9::json as i, $10::jsonb as j,
      $11::bytea as k, $12::text as l, null::int as m, array[1, 2]::int[] as n, array['a', null]::text[] as o,
      $13::float8 as p, 'infinity'::timestamp as q, '0044-03-15 12:00:00 BC'::timestamp as r, interval '1 day 2 hours' as s,
      '6ba7b810-9dad-11d1-80b4-00c04fd430c8'::uuid as t, $14::int8 as u, $15::text[] as v, 'NaN'::numeric as w`;
    const params = [1, 2, 3, '12345678901234567890.5', true, '2024-02-29', new Date(Date.UTC(2024, 1, 29, 23, 59, 58, 123)),
      new Date(Date.UTC(2001, 0, 1)), { a: [1, 'x'] }, JSON.stringify({ b: null }), Buffer.from([0, 1, 255]), 'héllo 😀 \\ \' "',
      1.25, 1234567890123456789n, ['x', 'y']];
    const a = await fwd.connect().query('p', sql, params);
    const b = await direct.connect().query('p', sql, params);
    expect(plain(a.rows)).toEqual(plain(b.rows));
    expect(a.rows[0]).toMatchObject({ big: 9007199254740993n, f: '2024-02-29', u: 1234567890123456789n, m: null, n: [1, 2] });
    expect(a.fields).toEqual(b.fields);
    expect(a.rowCount).toBe(1);
  });

  it('multi-statement text, the empty statement and COPY give what pg gives', async () => {
    for (const sql of ['select 1 as a; select 2 as b', '', 'select 1 as a where false', `update ${TABLE} set v = v where false`, `copy ${TABLE} to stdout`]) {
      const a = await fwd.connect().query('p', sql);
      const b = await direct.connect().query('p', sql);
      expect(a, sql).toEqual(b);
    }
    // COPY FROM STDIN cannot get its data through a plain statement: refused the same way, and the connection stays usable.
    const refuse = (broker: Broker) => broker.connect().query('p', `copy ${TABLE} from stdin`).then(() => undefined, (e: BrokerError) => ({ code: e.code, sqlState: e.sqlState }));
    expect(await refuse(fwd)).toEqual(await refuse(direct));
    expect(await refuse(fwd)).toMatchObject({ code: 'DATABASE_ERROR', sqlState: '57014' });
    expect((await fwd.connect().query('p', 'select 1 as one')).rows).toEqual([{ one: 1 }]);
  });

  it('a column named __proto__ is an own property of the row, never its prototype; duplicate names keep the last value', async () => {
    const sql = 'select 1 as "__proto__", 2 as a, 3 as a';
    for (const broker of [fwd, direct]) {
      const [row] = (await broker.connect().query('p', sql)).rows as Record<string, unknown>[];
      expect(Object.getPrototypeOf(row)).toBe(Object.prototype);
      expect(Object.getOwnPropertyDescriptor(row, '__proto__')?.value).toBe(1);
      expect(row.a).toBe(3);
    }
  });

  it('rowCount of writes, and server errors with their fields', async () => {
    const db = fwd.connect();
    const ins = await db.query('p', `insert into ${TABLE} values ($1, $2), ($3, $4)`, [1, 'a', 2, 'b']);
    expect(ins.rowCount).toBe(2);
    const err = (await db.query('p', `insert into ${TABLE} values ($1, $2)`, [1, 'dup']).catch((e: unknown) => e)) as BrokerError;
    expect(err).toMatchObject({ code: 'DATABASE_ERROR', sqlState: '23505', constraint: `${TABLE}_pkey`, database: 'p' });
    expect(err.detail).toContain('(id)=(1)');
    expect(err.stack).toContain('pg-forward.test.ts');
    const upd = await db.query('p', `update ${TABLE} set v = $1`, ['z']);
    expect(upd.rowCount).toBe(2);
    await db.query('p', `delete from ${TABLE}`);
  });

  it('results larger than one socket read arrive whole', async () => {
    const sql = "select g as id, repeat('x', 50) || g::text as v from generate_series(1, 30000) g";
    const a = await fwd.connect().query<{ id: number; v: string }>('p', sql);
    const b = await direct.connect().query<{ id: number; v: string }>('p', sql);
    expect(a.rowCount).toBe(30000);
    expect(a.rows).toEqual(b.rows);
  });

  it('a plain BEGIN is rolled back when its connection comes back, so the next statement autocommits', async () => {
    const one = await start(true, { max: 1 });
    try {
      const db = one.connect();
      await db.query('p', 'begin');
      await db.query('p', `insert into ${TABLE} values ($1, $2)`, [10, 'kept']);
      expect(await admin.scalar(`select count(*) from ${TABLE} where id = 10`)).toBe(1);
    } finally {
      await one.close();
      await admin.rows(`delete from ${TABLE}`);
    }
  });

  it('the statement limits hold: RESULT_TOO_LARGE, QUERY_TIMEOUT, and the connection is replaced', async () => {
    const limited = await start(true, { max: 1, maxRows: 10, queryTimeoutMillis: 300 });
    try {
      const db = limited.connect();
      const before = (await db.query<{ pid: number }>('p', 'select pg_backend_pid() as pid')).rows[0].pid;
      await expect(db.query('p', 'select generate_series(1, 11)')).rejects.toMatchObject({ code: 'RESULT_TOO_LARGE' });
      const after = (await db.query<{ pid: number }>('p', 'select pg_backend_pid() as pid')).rows[0].pid;
      expect(after).not.toBe(before);
      await expect(db.query('p', 'select pg_sleep($1)', [5])).rejects.toMatchObject({ code: 'QUERY_TIMEOUT' });
      expect((await db.query('p', 'select 1 as one')).rows).toEqual([{ one: 1 }]);
      // The server runs the abandoned sleep until it notices the closed socket: end it, so no
      // session of the broker's user outlives this test.
      await admin.rows('select pg_cancel_backend($1)', [after]);
      await waitFor('the abandoned session to end', async () => (await admin.scalar('select count(*) from pg_stat_activity where pid = $1', [after])) === 0);
      expect(limited.stats().databases.p).toMatchObject({ busy: 0, waiting: 0 });
    } finally {
      await limited.close();
    }
  });

  it('a session the server kills answers CONNECTION_LOST, and the next statement gets a new one', async () => {
    const one = await start(true, { max: 1 });
    try {
      const db = one.connect();
      await expect(db.query('p', 'select pg_terminate_backend(pg_backend_pid())')).rejects.toMatchObject({ code: 'CONNECTION_LOST' });
      expect((await db.query('p', 'select 1 as one')).rows).toEqual([{ one: 1 }]);
    } finally {
      await one.close();
    }
  });

  it('pipelined statements each get their own answer: values, errors and writes interleaved on 2 connections', async () => {
    const two = await start(true, { max: 2 });
    try {
      const db = two.connect();
      // One turn: 60 statements for 2 connections, so most wait and SELECTs share connections.
      const calls = Array.from({ length: 60 }, (_, i) => {
        if (i % 7 === 3) return db.query('p', 'select 1 / ($1::int - $1::int) as boom', [i]).then(() => 'no error', (e: BrokerError) => `${e.code} ${e.sqlState}`);
        if (i % 11 === 5) return db.query('p', `insert into ${TABLE} values ($1, $2)`, [i, `w${i}`]).then((r) => `inserted ${r.rowCount}`);
        if (i % 2 === 0) return db.query<{ v: number }>('p', 'select $1::int * 2 as v', [i]).then((r) => r.rows[0].v);
        return db.query<{ v: string }>('p', `select '${i}'::text as v`).then((r) => r.rows[0].v);
      });
      const got = await Promise.all(calls);
      const want = Array.from({ length: 60 }, (_, i) => {
        if (i % 7 === 3) return 'DATABASE_ERROR 22012';
        if (i % 11 === 5) return 'inserted 1';
        return i % 2 === 0 ? i * 2 : String(i);
      });
      expect(got).toEqual(want);
      expect(await admin.scalar(`select count(*) from ${TABLE}`)).toBe(want.filter((w) => w === 'inserted 1').length);
      expect(two.stats().databases.p).toMatchObject({ busy: 0, waiting: 0 });
    } finally {
      await two.close();
      await admin.rows(`delete from ${TABLE}`);
    }
  });

  it('a forwarded request without its message bytes is refused with INVALID_ARGUMENT', async () => {
    const port = fwd.port();
    const replies: unknown[] = [];
    const done = new Promise<void>((resolve) => {
      port.on('message', (m: unknown) => {
        replies.push(m);
        if ((m as { id?: number }).id === 1) resolve();
      });
    });
    port.postMessage({ t: 'hello', v: PROTOCOL_VERSION, thread: 0 });
    port.postMessage({ t: 'fq', id: 1, db: 'p', sql: 'select 1', m: 'not bytes' });
    await done;
    expect(replies.at(-1)).toMatchObject({ id: 1, e: { code: 'INVALID_ARGUMENT' } });
    port.close();
  });
});
