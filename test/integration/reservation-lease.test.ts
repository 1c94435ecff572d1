/**
 * RELIABILITY.md F8 / issue 3 item 5: leases. Idle timeout and maximum lifetime are enforced
 * within TTL + one housekeeping tick (50 ms here); the transaction's writes are rolled back; the
 * token then answers TOKEN_EXPIRED (not TOKEN_INVALID). On PostgreSQL the reserved connection
 * carries `idle_in_transaction_session_timeout` as a backstop, reset once it goes back to the pool.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Broker, BrokerError, type Db } from 'threadbroker';
import { RESERVED, SlotTable } from '../../src/slots/slot-table.js';
import { AGENT, Agent } from '../helpers/agent.js';
import { slotTableOf, until } from '../helpers/rsv-helpers.js';
import { BROKER_USER, KINDS, configFor } from '../helpers/test-setup.js';

/** The table of this file, per broker login, so concurrent runs under other logins never share it. */
const TABLE = `rsv_lease_${BROKER_USER}`;

const TICK = 50;
/** Timer and scheduling slack on a loaded 2-core machine. */
const SLACK = 80;

/**
 * Measures how late the main thread's event loop ran while `fn` ran (ms): a housekeeping tick
 * cannot run earlier than the loop lets it, so that lateness is added to the allowed slack.
 */
async function withLoopLag<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const h = monitorEventLoopDelay({ resolution: 5 });
  h.enable();
  try {
    const out = await fn();
    return [out, h.max / 1e6];
  } finally {
    h.disable();
  }
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'OK';
  } catch (err) {
    return err instanceof BrokerError ? err.code : String(err);
  }
}

for (const kind of KINDS) {
  describe(`${kind}: reservation leases`, () => {
    let broker: Broker;
    let db: Db;
    let table: SlotTable;

    beforeAll(async () => {
      broker = await Broker.start(configFor(kind, { max: 4 }, { idleTimeoutMillis: 60_000, maxLifetimeMillis: 120_000, housekeepingMillis: TICK }));
      db = broker.connect();
      table = await slotTableOf(broker);
      await db.query('db', `drop table if exists ${TABLE}`);
      await db.query('db', `create table ${TABLE} (tag varchar(40))`);
    });

    afterAll(async () => {
      await broker.close();
    });

    const visible = async (tag: string) => Number((await db.query<{ n: unknown }>('db', `select count(*) as n from ${TABLE} where tag = '${tag}'`)).rows[0].n);
    const reserved = () => broker.stats().databases.db.reserved;

    it('reclaims an idle reservation within its idle timeout plus one tick, and rolls it back', async () => {
      const idle = 300;
      const r = await db.reserve('db', { idleTimeoutMillis: idle });
      await r.begin();
      await r.query(`insert into ${TABLE} values ('idle')`);
      const token = r.token;
      const t0 = performance.now();
      const [, lag] = await withLoopLag(() => until(async () => (await codeOf(db.attach(token))) === 'TOKEN_EXPIRED', 'the idle lease to end'));
      const reclaimed = performance.now() - t0;
      expect(reclaimed).toBeGreaterThanOrEqual(idle - 10);
      expect(reclaimed).toBeLessThanOrEqual(idle + TICK + SLACK + lag);
      await until(() => reserved() === 0, 'the slot to be freed');
      expect(await visible('idle')).toBe(0);
      expect(await codeOf(r.query('select 1'))).toBe('TOKEN_EXPIRED');
      expect(r.released).toBe(true);
      expect(await codeOf(db.attach(token))).toBe('TOKEN_EXPIRED');
    });

    it('reclaims a reservation at its maximum lifetime even while statements keep it busy', async () => {
      const max = 400;
      const t0 = performance.now();
      const r = await db.reserve('db', { idleTimeoutMillis: 0, maxLifetimeMillis: max });
      await r.begin();
      await r.query(`insert into ${TABLE} values ('max')`);
      // Two loops, so a statement is always queued on the lease when the housekeeping tick runs.
      const loop = async (): Promise<unknown> => {
        for (let i = 0; i < 200_000; i++) {
          try {
            await r.query('select 1');
          } catch (err) {
            return err;
          }
        }
        return undefined;
      };
      const [errs, lag] = await withLoopLag(() => Promise.all([loop(), loop()]));
      const ended = performance.now() - t0;
      expect(errs.map((e) => (e as BrokerError)?.code)).toEqual(['TOKEN_EXPIRED', 'TOKEN_EXPIRED']);
      expect(ended).toBeGreaterThanOrEqual(max - 10);
      expect(ended).toBeLessThanOrEqual(max + TICK + SLACK + lag);
      await until(() => reserved() === 0, 'the slot to be freed');
      expect(await visible('max')).toBe(0);
    });

    it('honours the lease times a thread asked for even when the broker saw the claim first', async () => {
      const w = broker.worker(AGENT, { workerData: { agent: true } });
      try {
        const a = new Agent(w);
        await a.ready;
        const granted = a.call('reserve', { key: 'r', opts: { idleTimeoutMillis: 200 } });
        // Hold the main thread (in the check phase) until the thread's lock-free claim is in shared
        // memory and the housekeeping tick is due: the tick then adopts the claim before anything
        // from the thread reaches the broker, and must take the claimer's times from the slot.
        await new Promise<void>((resolve) => setImmediate(() => {
          const start = Date.now();
          while (table.state(0, 0) !== RESERVED && Date.now() - start < 5000) { /* spin: the claim is lock-free */ }
          while (Date.now() - start < TICK + 30) { /* spin: let the tick fall due */ }
          resolve();
        }));
        await granted;
        const token = await a.call<string>('token', { key: 'r' });
        await until(async () => (await codeOf(db.attach(token))) === 'TOKEN_EXPIRED', 'the announced 200 ms idle lease to end', 1000);
      } finally {
        await w.terminate();
      }
      await until(() => reserved() === 0, 'the slot to be freed');
    });

    it('serves leases that never end (both times 0), also when granted from the queue', async () => {
      const forever = { idleTimeoutMillis: 0, maxLifetimeMillis: 0 };
      const r = await db.reserve('db', forever);
      expect((await r.query('select 1 as one')).rows).toEqual([{ one: 1 }]);
      await r.release();
      const w = broker.worker(AGENT, { workerData: { agent: true } });
      try {
        const a = new Agent(w);
        await a.ready;
        expect(await a.call('reserveMany', { key: 'h', n: 3 })).toEqual({ granted: 3, refused: {} });
        const waiting = db.reserve('db', { ...forever, waitMillis: 5000 });
        await until(() => table.waiters(0) === 1, 'the main thread to queue');
        await a.call('release', { key: 'h0' });
        const q = await waiting;
        expect((await q.query('select 2 as two')).rows).toEqual([{ two: 2 }]);
        await q.release();
        await a.call('release', { key: 'h1' });
        await a.call('release', { key: 'h2' });
      } finally {
        await w.terminate();
      }
      expect(reserved()).toBe(0);
      const again = await Promise.all([0, 1, 2].map(() => db.reserve('db', { waitMillis: 1000 })));
      await Promise.all(again.map((x) => x.release()));
    });

    if (kind === 'pg') {
      /** Runs a plain query until it lands on the session `pid` (LIFO pool; bounded). */
      const settingOn = async (pid: number): Promise<string> => {
        for (let i = 0; i < 20; i++) {
          const { rows } = await db.query<{ pid: number; t: string }>('db', `select pg_backend_pid() as pid, current_setting('idle_in_transaction_session_timeout') as t`);
          if (rows[0].pid === pid) return rows[0].t;
        }
        throw new Error(`no plain query reached session ${pid}`);
      };

      it('sets the idle-in-transaction backstop above the lease on the reserved connection and resets it after', async () => {
        const r = await db.reserve('db', { idleTimeoutMillis: 2000 });
        const { rows } = await r.query<{ pid: number; t: string }>(`select pg_backend_pid() as pid, current_setting('idle_in_transaction_session_timeout') as t`);
        expect(rows[0].t).toBe('3s');
        await r.release();
        expect(await settingOn(rows[0].pid)).toBe('0');

        const e = await db.reserve('db', { idleTimeoutMillis: 150 });
        await e.begin();
        const pid = (await e.query<{ pid: number; t: string }>(`select pg_backend_pid() as pid, current_setting('idle_in_transaction_session_timeout') as t`)).rows[0];
        expect(pid.t).toBe('1150ms');
        await until(() => reserved() === 0, 'the lease to expire');
        expect(await settingOn(pid.pid)).toBe('0');
      });
    }
  });
}
