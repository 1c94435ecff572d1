/**
 * RELIABILITY.md F9 / issue 3 item 9: `broker.close()` with 3 open reservations (transactions that
 * wrote, one with a statement in flight and another queued behind it), 2 threads queued for a
 * reservation and 20 plain queries queued for a connection. Queued requests get BROKER_CLOSED,
 * the transactions are rolled back (their rows never appear), every request gets exactly one
 * answer, close() resolves within a bound, and no thread can take a reservation once close began.
 */
import mysql from 'mysql2/promise';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { Broker } from 'threadbroker';
import type { DriverKind } from '../../src/config/types.js';
import { FREE } from '../../src/slots/slot-table.js';
import { AGENT, Agent } from '../helpers/agent.js';
import { codeOf, sleepSql, slotTableOf, until } from '../helpers/rsv-helpers.js';
import { BROKER_USER, KINDS, configFor, urlOf } from '../helpers/test-setup.js';

/** The table of this file, per broker login, so concurrent runs under other logins never share it. */
const TABLE = `rsv_close_${BROKER_USER}`;

const CLOSE_TIMEOUT = 1000;

/** Runs SQL as the admin user (the broker is closed by then). */
async function admin(kind: DriverKind, sql: string, params: unknown[] = []): Promise<Record<string, unknown>[]> {
  if (kind === 'pg') {
    const c = new pg.Client({ connectionString: urlOf('pg') });
    await c.connect();
    try {
      return (await c.query(sql, params)).rows;
    } finally {
      await c.end();
    }
  }
  const c = await mysql.createConnection(urlOf('mysql'));
  try {
    return (await c.query(sql, params))[0] as Record<string, unknown>[];
  } finally {
    await c.end();
  }
}

/** Counts the broker login's sessions running `sleepSql(kind, s)` right now (server side). */
const runningSql = (kind: DriverKind, s: number) => (kind === 'pg'
  ? `select count(*)::int as n from pg_stat_activity where usename = $1 and state = 'active' and query = '${sleepSql(kind, s)}'`
  : `select count(*) as n from information_schema.processlist where user = ? and info = '${sleepSql(kind, s)}'`);

for (const kind of KINDS) {
  describe(`${kind}: close() with reservations outstanding`, () => {
    it('rolls back open reservations, answers every queued request, and resolves within a bound', async () => {
      const broker = await Broker.start(configFor(kind, { max: 4 }), { closeTimeoutMillis: CLOSE_TIMEOUT });
      const db = broker.connect();
      const table = await slotTableOf(broker);
      await db.query('db', `drop table if exists ${TABLE}`);
      await db.query('db', `create table ${TABLE} (tag varchar(40))`);
      const workers = Array.from({ length: 8 }, () => broker.worker(AGENT, { workerData: { agent: true } }));
      const [A, B, C, D, E, F, G, H] = workers.map((w) => new Agent(w));
      try {
        await Promise.all([A, B, C, D, E, F, G, H].map((a) => a.ready));
        // Three open transactions with writes, and the server sessions they run on.
        const sids: number[] = [];
        for (const [name, a] of [['A', A], ['B', B], ['C', C]] as const) {
          await a.call('reserve', { key: 'r' });
          await a.call('begin', { key: 'r' });
          await a.call('query', { key: 'r', sql: `insert into ${TABLE} values ('${name}')` });
          const rows = await a.call<{ s: unknown }[]>('query', { key: 'r', sql: kind === 'pg' ? 'select pg_backend_pid() as s' : 'select connection_id() as s' });
          sids.push(Number(rows[0].s));
        }
        // A: a statement in flight and one queued behind it.
        const inFlight = codeOf(A.call('query', { key: 'r', sql: sleepSql(kind, 0.31) }));
        const queuedOnLease = codeOf(A.call('query', { key: 'r', sql: `insert into ${TABLE} values ('A-late')` }));
        await until(async () => Number((await admin(kind, runningSql(kind, 0.31), [BROKER_USER]))[0].n) === 1, 'A\'s statement to run on the server');
        // Two threads queued for a reservation.
        const waitD = codeOf(D.call('reserve', { key: 'r', opts: { waitMillis: 10_000 } }));
        const waitE = codeOf(E.call('reserve', { key: 'r', opts: { waitMillis: 10_000 } }));
        await until(() => table.waiters(0) === 2, 'two reservation waiters');
        // The fourth connection busy, and 20 plain queries queued behind it.
        const busy = codeOf(F.call('query', { sql: sleepSql(kind, 0.3) }));
        await until(() => broker.stats().databases.db.busy === 4, 'every connection busy');
        const queuedPlain = Array.from({ length: 20 }, () => codeOf(G.call('query', { sql: 'select 1' })));
        await until(() => broker.stats().databases.db.waiting === 20, '20 queued plain queries');

        const t0 = performance.now();
        const closing = broker.close();
        // Once the reservations are gone and before the broker is done, no thread may take a slot.
        await until(() => [0, 1, 2].every((s) => table.state(0, s) === FREE), 'the slots to be freed');
        const late = await codeOf(H.call('reserve', { key: 'late' }));
        await closing;
        const closeMillis = performance.now() - t0;

        expect(await waitD).toBe('BROKER_CLOSED');
        expect(await waitE).toBe('BROKER_CLOSED');
        expect(await queuedOnLease).toBe('BROKER_CLOSED');
        expect(['OK', 'BROKER_CLOSED', 'TX_CONNECTION_LOST', 'CONNECTION_LOST']).toContain(await inFlight);
        expect(['OK', 'BROKER_CLOSED', 'CONNECTION_LOST']).toContain(await busy);
        // Every queued plain query gets exactly one answer, BROKER_CLOSED (F9): close() refuses the
        // pools' waiters before the reservations roll back and return their connections.
        const plain = await Promise.all(queuedPlain);
        expect(plain.every((c) => c === 'BROKER_CLOSED')).toBe(true);
        expect(late).toBe('BROKER_CLOSED');
        expect(closeMillis).toBeLessThan(CLOSE_TIMEOUT + 500);
        // After close: new work refused in every thread, nothing committed, nothing left open.
        expect(await codeOf(A.call('reserve', { key: 'after' }))).toBe('BROKER_CLOSED');
        expect(await codeOf(B.call('query', { key: 'r', sql: 'select 1' }))).toBe('BROKER_CLOSED');
        expect(await codeOf(db.reserve('db'))).toBe('BROKER_CLOSED');
        expect(await admin(kind, `select tag from ${TABLE}`)).toEqual([]);
        // The reserved sessions are closed: nothing of their transactions is left on the server.
        const sessions = kind === 'pg'
          ? `select count(*)::int as n from pg_stat_activity where pid in (${sids.join(', ')})`
          : `select count(*) as n from information_schema.processlist where id in (${sids.join(', ')})`;
        await until(async () => Number((await admin(kind, sessions))[0].n) === 0, 'the reserved sessions to end');
      } finally {
        await Promise.all(workers.map((w) => w.terminate()));
        await broker.close();
      }
    });

    it('answers a reservation\'s long statement and resolves within a bound when the statement outlasts it', async () => {
      const broker = await Broker.start(configFor(kind, { max: 4 }), { closeTimeoutMillis: CLOSE_TIMEOUT });
      const db = broker.connect();
      await db.query('db', `drop table if exists ${TABLE}`);
      await db.query('db', `create table ${TABLE} (tag varchar(40))`);
      const r = await db.reserve('db');
      await r.begin();
      await r.query(`insert into ${TABLE} values ('long')`);
      const statement = codeOf(r.query(sleepSql(kind, 5)));
      await until(async () => Number((await admin(kind, runningSql(kind, 5), [BROKER_USER]))[0].n) === 1, 'the statement to run on the server');
      const t0 = performance.now();
      await broker.close();
      const closeMillis = performance.now() - t0;
      expect(await statement).toBe('BROKER_CLOSED');
      // DESIGN.md: close() "resolves within a bound": one closeTimeoutMillis for the whole close.
      expect(closeMillis).toBeLessThan(CLOSE_TIMEOUT + 500);
      expect(await admin(kind, `select tag from ${TABLE}`)).toEqual([]);
    });
  });
}

