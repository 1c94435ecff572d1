/**
 * 16 threads contend for 3 reservation slots (max 4, so maxReserved 3). No slot is ever granted
 * twice, proved on the server: each holder writes its server session id into a table whose
 * primary key is that id while it holds the reservation (a double grant would be a duplicate key)
 * and counts the rows (never more than 3). Waiters are granted in FIFO order: the test queues them
 * one by one (watching the broker's waiter count in shared memory) and frees one slot at a time.
 */
import type { Worker } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Broker, type Db } from 'threadbroker';
import type { DriverKind } from '../../src/config/types.js';
import { SlotTable } from '../../src/slots/slot-table.js';
import { AGENT, Agent } from '../helpers/agent.js';
import { ConnectionMonitor } from '../helpers/monitor.js';
import { slotTableOf } from '../helpers/rsv-helpers.js';
import { BROKER_USER, KINDS, configFor } from '../helpers/test-setup.js';

/** The table of this file, per broker login, so concurrent runs under other logins never share it. */
const TABLE = `rsv_holders_${BROKER_USER}`;

const THREADS = 16;

/** Yields to the event loop until `cond` holds; fails after `millis` (a bound, not a sleep). */
async function until(cond: () => boolean, what: string, millis = 5000): Promise<void> {
  const end = Date.now() + millis;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setImmediate(r));
  }
}

const sid = (kind: DriverKind) => (kind === 'pg' ? 'pg_backend_pid()' : 'connection_id()');

for (const kind of KINDS) {
  describe(`${kind}: ${THREADS} threads contending for 3 slots`, () => {
    let broker: Broker;
    let db: Db;
    let table: SlotTable;
    let workers: Worker[] = [];
    let agents: Agent[] = [];
    const monitor = new ConnectionMonitor(kind);

    beforeAll(async () => {
      broker = await Broker.start(configFor(kind, { max: 4 }));
      db = broker.connect();
      table = await slotTableOf(broker);
      await db.query('db', `drop table if exists ${TABLE}`);
      await db.query('db', `create table ${TABLE} (sid bigint primary key, holder int not null)`);
      workers = Array.from({ length: THREADS }, () => broker.worker(AGENT, { workerData: { agent: true } }));
      agents = workers.map((w) => new Agent(w));
      await Promise.all(agents.map((a) => a.ready));
      await monitor.start(5);
    });

    afterAll(async () => {
      await monitor.stop();
      await Promise.all(workers.map((w) => w.terminate()));
      await broker.close();
    });

    /** Takes the reservation on the server: the holder's session id goes into the keyed table. */
    async function occupy(i: number): Promise<number> {
      const a = agents[i];
      await a.call('query', { key: 'r', sql: `insert into ${TABLE} values (${sid(kind)}, ${i})` });
      const rows = await a.call<{ n: unknown; s: unknown }[]>('query', { key: 'r', sql: `select count(*) as n, max(case when holder = ${i} then sid end) as s from ${TABLE}` });
      expect(Number(rows[0].n)).toBeLessThanOrEqual(3);
      return Number(rows[0].s);
    }

    async function vacate(i: number): Promise<void> {
      await agents[i].call('query', { key: 'r', sql: `delete from ${TABLE} where holder = ${i}` });
      await agents[i].call('release', { key: 'r' });
    }

    it('grants queued waiters strictly in FIFO order, one session per holder', async () => {
      const live = new Map<number, number>(); // holder -> server session id
      for (const i of [0, 1, 2]) {
        await agents[i].call('reserve', { key: 'r', opts: { waitMillis: 30_000 } });
        live.set(i, await occupy(i));
      }
      expect(new Set(live.values()).size).toBe(3);
      expect(broker.stats().databases.db.reserved).toBe(3);

      // Queue the other 13, one at a time, each behind the previous (the waiter count proves it queued).
      const enqueued: number[] = [];
      const granted: number[] = [];
      const grants = new Map<number, Promise<void>>();
      for (let i = 3; i < THREADS; i++) {
        grants.set(i, agents[i].call('reserve', { key: 'r', opts: { waitMillis: 30_000 } }).then(() => {
          granted.push(i);
        }));
        await until(() => table.waiters(0) === i - 2, `waiter ${i} to queue`);
        enqueued.push(i);
      }

      // Free one slot at a time: exactly the head of the queue gets it.
      const order = [...live.keys()];
      for (let k = 0; k < enqueued.length; k++) {
        const leaving = order.shift()!;
        await vacate(leaving);
        live.delete(leaving);
        const next = enqueued[k];
        await grants.get(next);
        expect(granted).toEqual(enqueued.slice(0, k + 1));
        live.set(next, await occupy(next));
        order.push(next);
        expect(live.size).toBe(3);
        expect(new Set(live.values()).size).toBe(3);
        expect(table.waiters(0)).toBe(enqueued.length - k - 1);
      }
      for (const i of order) await vacate(i);
      expect(broker.stats().databases.db.reserved).toBe(0);
      expect(Number((await db.query<{ n: unknown }>('db', `select count(*) as n from ${TABLE}`)).rows[0].n)).toBe(0);
    });

    it('never double-grants when all 16 threads reserve, hold and release at will', async () => {
      let maxHeld = 0;
      let held = 0;
      const rounds = 5;
      await Promise.all(agents.map(async (_, i) => {
        for (let round = 0; round < rounds; round++) {
          await agents[i].call('reserve', { key: 'r', opts: { waitMillis: 30_000 } });
          held++;
          maxHeld = Math.max(maxHeld, held);
          await occupy(i); // a duplicate session id would fail here with a primary-key violation
          held--;
          await vacate(i);
        }
      }));
      expect(maxHeld).toBeLessThanOrEqual(3);
      expect(broker.stats().databases.db.reserved).toBe(0);
      expect(Number((await db.query<{ n: unknown }>('db', `select count(*) as n from ${TABLE}`)).rows[0].n)).toBe(0);
      // The cap oracle: the broker's sessions on the server never exceeded max.
      expect(monitor.max).toBeLessThanOrEqual(4);
      expect(monitor.samples).toBeGreaterThan(0);
    });
  });
}
