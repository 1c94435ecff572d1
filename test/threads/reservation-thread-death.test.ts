/**
 * RELIABILITY.md F7 / issue 3 item 6: a thread dies — `worker.terminate()`, `process.exit(1)`
 * inside it, an uncaught throw, out of memory under `resourceLimits` — while it holds a reservation
 * whose token it never read, with an open transaction that wrote a row, a statement in flight and
 * another queued. The row never becomes visible, no `idle in transaction` session stays behind for
 * the broker login, the slot is freed, and other threads keep working. A reservation whose token
 * was read (handed over) survives its thread's death and lives by its lease. And (F2) a reserved
 * session killed by the server answers TX_CONNECTION_LOST at once, never a hang.
 */
import { MessageChannel, type Worker, type ResourceLimits } from 'node:worker_threads';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Broker, type Db } from 'threadbroker';
import type { DriverKind } from '../../src/config/types.js';
import { claimingState, slotBase } from '../../src/slots/slot-layout.js';
import { FREE } from '../../src/slots/slot-table.js';
import { AGENT, Agent } from '../helpers/agent.js';
import { sleepSql, slotTableOf } from '../helpers/rsv-helpers.js';
import { BROKER_USER, KINDS, configFor, urlOf } from '../helpers/test-setup.js';

/** The table of this file, per broker login, so concurrent runs under other logins never share it. */
const TABLE = `rsv_death_${BROKER_USER}`;

/** Yields to the event loop until `cond` holds; fails after `millis` (a bound, not a sleep). */
async function until(cond: () => boolean | Promise<boolean>, what: string, millis = 5000): Promise<void> {
  const end = Date.now() + millis;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Open transactions of the broker login, seen by the server (admin connection). */
async function openTransactions(kind: DriverKind): Promise<number> {
  if (kind === 'pg') {
    const c = new pg.Client({ connectionString: urlOf('pg') });
    await c.connect();
    try {
      const r = await c.query(`select count(*)::int as n from pg_stat_activity where usename = $1 and state like 'idle in transaction%'`, [BROKER_USER]);
      return r.rows[0].n as number;
    } finally {
      await c.end();
    }
  }
  const c = await mysql.createConnection(urlOf('mysql'));
  try {
    const [rows] = await c.query(`select count(*) as n from information_schema.innodb_trx t join information_schema.processlist p on p.id = t.trx_mysql_thread_id where p.user = ?`, [BROKER_USER]);
    return Number((rows as { n: number }[])[0].n);
  } finally {
    await c.end();
  }
}

/** Runs one statement as the admin user. */
async function adminQuery(kind: DriverKind, sql: string): Promise<void> {
  if (kind === 'pg') {
    const c = new pg.Client({ connectionString: urlOf('pg') });
    await c.connect();
    try {
      await c.query(sql);
    } finally {
      await c.end();
    }
    return;
  }
  const c = await mysql.createConnection(urlOf('mysql'));
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}

type Death = 'terminate' | 'exit' | 'throw' | 'oom';

for (const kind of KINDS) {
  describe(`${kind}: a thread dies holding a reservation`, () => {
    let broker: Broker;
    let db: Db;
    let survivor: Agent;
    let survivorWorker: Worker;

    beforeAll(async () => {
      broker = await Broker.start(configFor(kind, { max: 4 }));
      db = broker.connect();
      await db.query('db', `drop table if exists ${TABLE}`);
      await db.query('db', `create table ${TABLE} (tag varchar(40) primary key)`);
      // Another thread that works throughout, with a reservation of its own (no open transaction).
      survivorWorker = broker.worker(AGENT, { workerData: { agent: true } });
      survivor = new Agent(survivorWorker);
      await survivor.ready;
      await survivor.call('reserve', { key: 'mine' });
      await survivor.call('query', { key: 'mine', sql: `insert into ${TABLE} values ('survivor')` });
    });

    afterAll(async () => {
      await survivorWorker?.terminate();
      await broker.close();
    });

    const visible = async (tag: string) => Number((await db.query<{ n: unknown }>('db', `select count(*) as n from ${TABLE} where tag = '${tag}'`)).rows[0].n);

    async function dieHolding(how: Death, handOver: boolean, lease: Record<string, number> = {}): Promise<{ tag: string; token?: string; t0: number }> {
      const limits: ResourceLimits | undefined = how === 'oom' ? { maxOldGenerationSizeMb: 24, maxYoungGenerationSizeMb: 8 } : undefined;
      const w = broker.worker(AGENT, { workerData: { agent: true }, resourceLimits: limits });
      w.on('error', () => undefined); // the throw and out-of-memory deaths report here
      const a = new Agent(w);
      await a.ready;
      const tag = `${how}-${handOver ? 'handed' : 'unread'}`;
      await a.call('reserve', { key: 'r', opts: lease });
      await a.call('begin', { key: 'r' });
      await a.call('query', { key: 'r', sql: `insert into ${TABLE} values ('${tag}')` });
      const token = handOver ? await a.call<string>('token', { key: 'r' }) : undefined;
      // A statement in flight and one queued behind it, never answered.
      void a.call('query', { key: 'r', sql: sleepSql(kind, 0.2) }).catch(() => undefined);
      void a.call('query', { key: 'r', sql: `insert into ${TABLE} values ('${tag}-late')` }).catch(() => undefined);
      const exited = new Promise<number>((r) => w.once('exit', r));
      const t0 = Date.now();
      if (how === 'terminate') void w.terminate();
      else void a.call('die', { how }).catch(() => undefined);
      expect(await exited).toBe(1);
      return { tag, token, t0 };
    }

    for (const how of ['terminate', 'exit', 'throw', 'oom'] as const) {
      it(`rolls back and frees an unread reservation when the thread dies by ${how}`, async () => {
        expect(broker.stats().databases.db.reserved).toBe(1); // the survivor's
        const { tag, t0 } = await dieHolding(how, false);
        await until(() => broker.stats().databases.db.reserved === 1, 'the dead thread\'s slot to be freed');
        const freedAfter = Date.now() - t0;
        expect(freedAfter).toBeLessThan(2000);
        expect(await visible(tag)).toBe(0);
        expect(await visible(`${tag}-late`)).toBe(0);
        await until(async () => (await openTransactions(kind)) === 0, 'no open transaction for the broker login');
        // The others keep working: plain queries, the survivor's own reservation, new reservations.
        expect(await survivor.call('query', { sql: 'select 1 as one' })).toEqual([{ one: 1 }]);
        const mine = await survivor.call<{ n: unknown }[]>('query', { key: 'mine', sql: `select count(*) as n from ${TABLE} where tag = 'survivor'` });
        expect(Number(mine[0].n)).toBe(1);
        const r = await db.reserve('db', { waitMillis: 1000 });
        await r.query('select 1');
        await r.release();
        expect(broker.stats().databases.db.reserved).toBe(1);
      });
    }

    it('keeps a handed-over reservation alive after its thread dies, for whoever holds the token', async () => {
      // The same thread also holds an unread reservation: once that one is freed, the broker has
      // handled this thread's death, so the handed-over one surviving is not a matter of timing.
      const w = broker.worker(AGENT, { workerData: { agent: true } });
      const a = new Agent(w);
      await a.ready;
      await a.call('reserve', { key: 'unread' });
      await a.call('query', { key: 'unread', sql: 'select 1' });
      await a.call('reserve', { key: 'r' });
      await a.call('begin', { key: 'r' });
      await a.call('query', { key: 'r', sql: `insert into ${TABLE} values ('handed')` });
      const token = await a.call<string>('token', { key: 'r' });
      expect(broker.stats().databases.db.reserved).toBe(3);
      await w.terminate();
      await until(() => broker.stats().databases.db.reserved === 2, 'the unread reservation to be freed');
      const r = await db.attach(token);
      expect((await r.query(`select tag from ${TABLE} where tag = 'handed'`)).rows).toEqual([{ tag: 'handed' }]);
      expect(await visible('handed')).toBe(0);
      await r.commit();
      await r.release();
      expect(await visible('handed')).toBe(1);
      expect(broker.stats().databases.db.reserved).toBe(1);
    });

    it('lets a handed-over reservation of a dead thread live by its lease, then rolls it back', async () => {
      const { tag, token } = await dieHolding('terminate', true, { idleTimeoutMillis: 400 });
      expect(broker.stats().databases.db.reserved).toBe(2);
      await until(() => broker.stats().databases.db.reserved === 1, 'the lease to expire');
      await expect(db.attach(token!)).rejects.toMatchObject({ code: 'TOKEN_EXPIRED' });
      expect(await visible(tag)).toBe(0);
      await until(async () => (await openTransactions(kind)) === 0, 'no open transaction for the broker login');
    });

    it('frees a slot whose claim its thread never finished (killed between the two CASes)', async () => {
      const table = await slotTableOf(broker);
      const w = broker.worker(AGENT, { workerData: { agent: true } });
      const a = new Agent(w);
      const thread = await a.ready;
      const before = broker.stats().databases.db.reserved;
      // Fault injection: the state the slot is in when its claimer dies after FREE→CLAIMING(thread).
      const slot = [0, 1, 2].find((s) => table.state(0, s) === FREE)!;
      expect(Atomics.compareExchange(new Int32Array(table.buffer), slotBase(table.slotCounts, 0, slot), FREE, claimingState(thread))).toBe(FREE);
      expect(broker.stats().databases.db.reserved).toBe(before + 1);
      await w.terminate();
      await until(() => broker.stats().databases.db.reserved === before, 'the abandoned claim to be freed');
      expect(table.state(0, slot)).toBe(FREE);
      const all = await Promise.all([0, 1, 2].slice(before).map(() => db.reserve('db', { waitMillis: 1000 })));
      await Promise.all(all.map((r) => r.release()));
    });

    it('answers TX_CONNECTION_LOST at once when the server kills the reserved session mid-transaction (F2)', async () => {
      const r = await db.reserve('db', { idleTimeoutMillis: 300 });
      await r.begin();
      await r.query(`insert into ${TABLE} values ('killed')`);
      const sid = Number((await r.query<{ s: unknown }>(kind === 'pg' ? 'select pg_backend_pid() as s' : 'select connection_id() as s')).rows[0].s);
      await adminQuery(kind, kind === 'pg' ? `select pg_terminate_backend(${sid})` : `kill ${sid}`);
      const t0 = performance.now();
      expect(await r.query('select 1').then(() => 'OK', (e: { code: string }) => e.code)).toBe('TX_CONNECTION_LOST');
      expect(await r.query('select 1').then(() => 'OK', (e: { code: string }) => e.code)).toBe('TX_CONNECTION_LOST');
      expect(await r.commit().then(() => 'OK', (e: { code: string }) => e.code)).toBe('TX_CONNECTION_LOST');
      expect(performance.now() - t0).toBeLessThan(1000);
      expect(await visible('killed')).toBe(0);
      // The holder learns it and releases; the lost connection was destroyed, not pooled.
      await r.release();
      expect(broker.stats().databases.db.reserved).toBe(1);
      // Abandoned instead: the lease ends it.
      const a = await db.reserve('db', { idleTimeoutMillis: 200 });
      const asid = Number((await a.query<{ s: unknown }>(kind === 'pg' ? 'select pg_backend_pid() as s' : 'select connection_id() as s')).rows[0].s);
      await adminQuery(kind, kind === 'pg' ? `select pg_terminate_backend(${asid})` : `kill ${asid}`);
      expect(await a.query('select 1').then(() => 'OK', (e: { code: string }) => e.code)).toBe('TX_CONNECTION_LOST');
      await until(() => broker.stats().databases.db.reserved === 1, 'the abandoned lease to end');
    });

    it('frees the reservation of a piscina task whose thread exits, and piscina keeps serving', async () => {
      const pool = broker.piscina({ filename: AGENT.href, minThreads: 1, maxThreads: 1 });
      const { port1, port2 } = new MessageChannel();
      const a = new Agent(port1);
      const task = pool.run({ port: port2 }, { transferList: [port2] }).catch((e: Error) => e);
      const first = await a.ready;
      await a.call('reserve', { key: 'r' });
      await a.call('begin', { key: 'r' });
      await a.call('query', { key: 'r', sql: `insert into ${TABLE} values ('piscina')` });
      void a.call('die', { how: 'exit' }).catch(() => undefined);
      expect(String(await task)).toMatch(/exited/);
      await until(() => broker.stats().databases.db.reserved === 1, 'the piscina thread\'s slot to be freed');
      expect(await visible('piscina')).toBe(0);
      const again = new MessageChannel();
      const b = new Agent(again.port1);
      const next = pool.run({ port: again.port2 }, { transferList: [again.port2] });
      expect(await b.ready).not.toBe(first);
      await b.call('reserve', { key: 'r' });
      expect(await b.call('query', { key: 'r', sql: 'select 2 as two' })).toEqual([{ two: 2 }]);
      await b.call('release', { key: 'r' });
      void b.call('done');
      await next;
      await pool.destroy();
    });
  });
}
