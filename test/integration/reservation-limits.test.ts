/**
 * Issue 3 items 3, 4 and 8, RELIABILITY.md S1 and S7: generations (a released slot's token never
 * works again, even once the slot is reused — ABA), commit and rollback end a token, double
 * release, savepoints, no pool deadlock (a thread that holds a reservation and asks for another
 * while none is free gets POOL_DEADLOCK at once; nobody hangs), and hoarding (a thread asking for
 * cap + 10 reservations gets at most maxReserved while plain queries keep being served).
 */
import type { Worker } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Broker, type Db } from 'threadbroker';
import { SlotTable } from '../../src/slots/slot-table.js';
import { AGENT, Agent } from '../helpers/agent.js';
import { codeOf, slotTableOf } from '../helpers/rsv-helpers.js';
import { BROKER_USER, KINDS, configFor } from '../helpers/test-setup.js';

/** The table of this file, per broker login, so concurrent runs under other logins never share it. */
const TABLE = `rsv_lim_${BROKER_USER}`;

for (const kind of KINDS) {
  describe(`${kind}: reservation generations and limits`, () => {
    let broker: Broker;
    let db: Db;
    let table: SlotTable;
    const workers: Worker[] = [];
    const agents: Agent[] = [];

    beforeAll(async () => {
      broker = await Broker.start(configFor(kind, { max: 4 }));
      db = broker.connect();
      table = await slotTableOf(broker);
      await db.query('db', `drop table if exists ${TABLE}`);
      await db.query('db', `create table ${TABLE} (tag varchar(40))`);
      for (let i = 0; i < 11; i++) workers.push(broker.worker(AGENT, { workerData: { agent: true } }));
      agents.push(...workers.map((w) => new Agent(w)));
      await Promise.all(agents.map((a) => a.ready));
    });

    afterAll(async () => {
      await Promise.all(workers.map((w) => w.terminate()));
      await broker.close();
    });

    const tags = async () => (await db.query<{ tag: string }>('db', `select tag from ${TABLE} order by tag`)).rows.map((r) => r.tag);
    const reserved = () => broker.stats().databases.db.reserved;

    it('never accepts a released slot\'s token again, however often the slot is reused (ABA)', async () => {
      const old: string[] = [];
      for (let i = 0; i < 200; i++) {
        // Nothing else is held, so every cycle claims slot 0 again.
        const r = await db.reserve('db');
        const token = r.token;
        expect(token.split('.')[3]).toBe('0');
        expect(await codeOf(db.attach(token))).toBe('OK');
        for (const t of old.slice(-3)) expect(await codeOf(db.attach(t))).toBe('TOKEN_EXPIRED');
        await r.release();
        old.push(token);
      }
      expect(new Set(old.map((t) => t.split('.')[4])).size).toBe(200);
      for (const t of old) expect(await codeOf(db.attach(t))).toBe('TOKEN_EXPIRED');
    });

    it('refuses a stale handle in another thread on the broker side; the slot\'s new holder is untouched', async () => {
      const [B] = agents;
      const r1 = await db.reserve('db');
      await B.call('attach', { key: 'stale', token: r1.token });
      await r1.release();
      const r2 = await db.reserve('db');
      expect(r2.token.split('.')[3]).toBe(r1.token.split('.')[3]); // the same slot, reused
      await r2.begin();
      await r2.query(`insert into ${TABLE} values ('r2')`);
      // B's handle names the old generation: every use is refused, none reaches r2's connection.
      expect(await codeOf(B.call('query', { key: 'stale', sql: `insert into ${TABLE} values ('stale')` }))).toBe('TOKEN_EXPIRED');
      expect(await codeOf(B.call('commit', { key: 'stale' }))).toBe('TOKEN_EXPIRED');
      expect(await codeOf(B.call('rollback', { key: 'stale' }))).toBe('TOKEN_EXPIRED');
      expect(await codeOf(B.call('release', { key: 'stale' }))).toBe('TOKEN_EXPIRED');
      expect(await B.call('released', { key: 'stale' })).toBe(true);
      expect((await r2.query(`select tag from ${TABLE}`)).rows).toEqual([{ tag: 'r2' }]);
      await r2.commit();
      await r2.release();
      expect(await tags()).toEqual(['r2']);
      await db.query('db', `delete from ${TABLE}`);
    });

    it('ends a token with its transaction: after commit or rollback the old token is refused, the handle goes on', async () => {
      const r = await db.reserve('db');
      for (const end of ['commit', 'rollback'] as const) {
        await r.begin();
        await r.query(`insert into ${TABLE} values ('${end}')`);
        const before = r.token;
        await r[end]();
        const after = r.token;
        expect(after).not.toBe(before);
        expect(await codeOf(db.attach(before))).toBe('TOKEN_EXPIRED');
        const same = await db.attach(after);
        expect((await same.query('select 1 as one')).rows).toEqual([{ one: 1 }]);
      }
      await r.release();
      expect(await tags()).toEqual(['commit']);
      await db.query('db', `delete from ${TABLE}`);
    });

    it('answers a second release with TOKEN_EXPIRED, locally and through another handle', async () => {
      const r = await db.reserve('db');
      const other = await db.attach(r.token);
      await r.release();
      expect(await codeOf(r.release())).toBe('TOKEN_EXPIRED');
      expect(await codeOf(other.release())).toBe('TOKEN_EXPIRED');
      expect(reserved()).toBe(0);
    });

    it('keeps savepoints inside a reservation and refuses a hostile savepoint name', async () => {
      const r = await db.reserve('db');
      await r.begin();
      await r.query(`insert into ${TABLE} values ('a')`);
      await r.savepoint('sp1');
      await r.query(`insert into ${TABLE} values ('b')`);
      await r.rollbackTo('sp1');
      await r.query(`insert into ${TABLE} values ('c')`);
      await r.releaseSavepoint('sp1');
      expect(await codeOf(r.savepoint(`x"; drop table ${TABLE}; --`))).toBe('INVALID_ARGUMENT');
      expect(await codeOf(r.savepoint('1abc'))).toBe('INVALID_ARGUMENT');
      await r.commit();
      await r.release();
      expect(await tags()).toEqual(['a', 'c']);
      await db.query('db', `delete from ${TABLE}`);
    });

    it('refuses begin() inside an open transaction on both kinds (MySQL would silently commit the first half)', async () => {
      const r = await db.reserve('db');
      await r.begin();
      await r.query(`insert into ${TABLE} values ('first-half')`);
      expect(await codeOf(r.begin())).toBe('INVALID_ARGUMENT');
      await r.query(`insert into ${TABLE} values ('second-half')`);
      await r.rollback();
      expect(await tags()).toEqual([]);
      // After the transaction ends, begin() works again.
      await r.begin();
      await r.rollback();
      await r.release();
    });

    it('answers POOL_DEADLOCK at once to a holder asking for another reservation while none is free', async () => {
      const [A, B, C, D] = agents;
      for (const a of [A, B, C]) {
        await a.call('reserve', { key: 'one' });
        await a.call('query', { key: 'one', sql: 'select 1' });
      }
      expect(reserved()).toBe(3);
      let t0 = performance.now();
      expect(await codeOf(A.call('reserve', { key: 'two', opts: { waitMillis: 10_000 } }))).toBe('POOL_DEADLOCK');
      expect(performance.now() - t0).toBeLessThan(500);
      // All three holders ask at once: all refused at once, nobody hangs.
      t0 = performance.now();
      const all = await Promise.all([A, B, C].map((a) => codeOf(a.call('reserve', { key: 'two', opts: { waitMillis: 10_000 } }))));
      expect(all).toEqual(['POOL_DEADLOCK', 'POOL_DEADLOCK', 'POOL_DEADLOCK']);
      expect(performance.now() - t0).toBeLessThan(1000);
      // A holder's plain query still runs: one connection always stays out of reach of reservations.
      expect(await A.call('query', { sql: 'select 3 as three' })).toEqual([{ three: 3 }]);
      // A thread that holds nothing waits its bounded turn instead.
      t0 = performance.now();
      expect(await codeOf(D.call('reserve', { key: 'one', opts: { waitMillis: 200 } }))).toBe('ACQUIRE_TIMEOUT');
      expect(performance.now() - t0).toBeGreaterThanOrEqual(195);
      expect(performance.now() - t0).toBeLessThan(1000);
      // Two holders, one free slot, both ask: one gets it, the other is refused; nobody hangs.
      await C.call('release', { key: 'one' });
      const race = await Promise.all([A, B].map((a) => codeOf(a.call('reserve', { key: 'two', opts: { waitMillis: 10_000 } }))));
      expect([...race].sort()).toEqual(['OK', 'POOL_DEADLOCK']);
      const winner = race[0] === 'OK' ? A : B;
      await winner.call('release', { key: 'two' });
      await A.call('release', { key: 'one' });
      await B.call('release', { key: 'one' });
      expect(reserved()).toBe(0);
      expect(table.waiters(0)).toBe(0);
    });

    it('lets a holder whose reservation was handed over wait its turn instead (another thread ends that one)', async () => {
      const [A, B, C] = agents;
      await A.call('reserve', { key: 'given' });
      const token = await A.call<string>('token', { key: 'given' });
      await B.call('reserve', { key: 'one' });
      await C.call('reserve', { key: 'one' });
      const t0 = performance.now();
      expect(await codeOf(A.call('reserve', { key: 'more', opts: { waitMillis: 200 } }))).toBe('ACQUIRE_TIMEOUT');
      expect(performance.now() - t0).toBeGreaterThanOrEqual(195);
      const waiting = codeOf(A.call('reserve', { key: 'more', opts: { waitMillis: 10_000 } }));
      const deadline = Date.now() + 5000;
      while (table.waiters(0) !== 1 && Date.now() < deadline) await new Promise((r) => setImmediate(r));
      const taker = await db.attach(token);
      await taker.release();
      expect(await waiting).toBe('OK');
      for (const [a, key] of [[A, 'more'], [B, 'one'], [C, 'one']] as const) await a.call('release', { key });
      expect(reserved()).toBe(0);
    });

    it('answers POOL_DEADLOCK at once also when the holder never used its reservations (the broker has not seen them)', async () => {
      const H = agents[1];
      const t0 = performance.now();
      const hoard = await H.call<{ granted: number; refused: Record<string, number> }>('reserveMany', { key: 'u', n: 4, opts: { waitMillis: 10_000 } });
      expect(hoard).toEqual({ granted: 3, refused: { POOL_DEADLOCK: 1 } });
      expect(performance.now() - t0).toBeLessThan(1000);
      for (let i = 0; i < 3; i++) await H.call('release', { key: `u${i}` });
      expect(reserved()).toBe(0);
    });

    it('gives a hoarder at most maxReserved reservations while 8 threads keep their plain queries served', async () => {
      const [H, ...plain] = agents.slice(2);
      expect(plain).toHaveLength(8);
      const hoard = await H.call<{ granted: number; refused: Record<string, number> }>('reserveMany', { key: 'h', n: 3 + 10, bind: true, opts: { waitMillis: 200 } });
      expect(hoard.granted).toBe(3);
      expect(hoard.refused).toEqual({ POOL_DEADLOCK: 10 });
      expect(reserved()).toBe(3);
      const latencies: number[] = [];
      await Promise.all(plain.map(async (a) => {
        for (let i = 0; i < 25; i++) {
          const t = performance.now();
          expect(await a.call('query', { sql: 'select 1 as one' })).toEqual([{ one: 1 }]);
          latencies.push(performance.now() - t);
        }
      }));
      latencies.sort((x, y) => x - y);
      expect(latencies).toHaveLength(200);
      expect(latencies[Math.floor(latencies.length * 0.99)]).toBeLessThan(1000);
      expect(broker.stats().databases.db.open).toBeLessThanOrEqual(4);
      for (let i = 0; i < 3; i++) await H.call('release', { key: `h${i}` });
      expect(reserved()).toBe(0);
    });
  });
}
