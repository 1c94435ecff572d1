/**
 * Broker core, faults and shutdown (RELIABILITY.md F1, F3, F7, F9): server-side kills of idle
 * and busy connections, a worker terminated with a statement in flight and more queued, and
 * `broker.close()` with work in flight and queued, from the main thread and from workers; and a
 * child process that starts a broker, queries, closes and must exit on its own.
 *
 * As in core-pool: a "gate" (an admin transaction holding a row lock) keeps broker connections
 * busy until the test opens it, and every step waits (bounded) for the state it needs.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Broker, BrokerError } from 'threadbroker';
import { BROKER_USER, KINDS, configFor, ph, serverCountSql } from '../helpers/test-setup.js';
import { Admin, COMMANDER, Commander, GATE, Gate, waitFor } from '../helpers/core-harness.js';

const CHILD = fileURLToPath(new URL('../fixtures/workers/core-close-child.mjs', import.meta.url));
const CHILD_POOLS = fileURLToPath(new URL('../fixtures/workers/core-close-child-pools.mjs', import.meta.url));
// Per-login table names: a concurrent run of this file under another login must not share rows or locks.
const TX = `core_tx_${BROKER_USER}`;

/** Kills broker sessions on the server; `which` picks them (all, or those running a statement like the pattern). */
async function killSessions(admin: Admin, like?: string): Promise<number[]> {
  const pg_ = admin.kind === 'pg';
  const rows = pg_
    ? await admin.rows(`select pid as id from pg_stat_activity where usename = $1 ${like ? 'and query like $2' : ''}`, like ? [BROKER_USER, like] : [BROKER_USER])
    : await admin.rows(`select id from information_schema.processlist where user = ? ${like ? 'and info like ?' : ''}`, like ? [BROKER_USER, like] : [BROKER_USER]);
  const ids = rows.map((r) => Number(r.id));
  for (const id of ids) {
    if (pg_) await admin.rows('select pg_terminate_backend($1)', [id]);
    else await admin.rows(`kill connection ${id}`);
  }
  return ids;
}

type Reply = { ok?: unknown[]; error?: Record<string, unknown> };

for (const kind of KINDS) {
  describe(`${kind}: faults and shutdown`, () => {
    let admin: Admin;
    let gate: Gate;
    let broker: Broker | undefined;
    const p = (i: number): string => ph(kind, i);
    const sessions = (): Promise<number> => admin.scalar(serverCountSql(kind));
    const errors: unknown[] = [];
    const onError = (e: unknown): void => void errors.push(e);

    beforeAll(async () => {
      admin = await new Admin(kind).open();
      if (kind === 'pg') {
        await admin.rows(`create table if not exists ${GATE} (id int primary key)`);
        await admin.rows(`create table if not exists ${TX} (v int not null)`);
        await admin.rows(`grant all on ${GATE}, ${TX} to ${BROKER_USER}`);
        await admin.rows(`insert into ${GATE} values (1), (2), (3) on conflict do nothing`);
      } else {
        await admin.rows(`create table if not exists ${GATE} (id int primary key) engine=innodb`);
        await admin.rows(`create table if not exists ${TX} (v int not null) engine=innodb`);
        await admin.rows(`insert ignore into ${GATE} values (1), (2), (3)`);
      }
      gate = await new Gate(kind, 2).init();
      process.on('uncaughtException', onError);
      process.on('unhandledRejection', onError);
    });

    afterEach(async () => {
      await gate.open();
      await broker?.close();
      broker = undefined;
      await waitFor('no broker sessions on the server', async () => (await sessions()) === 0);
      // No test may leave an unhandled error behind (pg #1324, #3083).
      const seen = errors.splice(0).map((e) => (e instanceof Error ? e.stack : String(e)));
      expect(seen).toEqual([]);
    });

    afterAll(async () => {
      process.off('uncaughtException', onError);
      process.off('unhandledRejection', onError);
      await gate.close();
      await admin.rows(`drop table if exists ${GATE}, ${TX}`);
      await admin.close();
    });

    /** Starts `n` gated statements from the main thread and waits until all block on the server. */
    async function holdConnections(n: number): Promise<Promise<unknown>[]> {
      await gate.hold();
      const db = broker!.connect();
      const held = Array.from({ length: n }, () => db.query('db', gate.sql));
      await waitFor(`${n} broker sessions blocked on the gate`, async () => (await gate.blocked()) === n);
      return held;
    }

    it('idle connections killed on the server are evicted; the next 100 queries succeed (≤ 1 CONNECTION_LOST, on the first)', async () => {
      broker = await Broker.start(configFor(kind, { max: 4 }));
      const db = broker.connect();
      for (let round = 0; round < 3; round++) {
        const held = await holdConnections(4);
        await gate.open();
        await Promise.all(held);
        expect(broker.stats().databases.db).toMatchObject({ open: 4, idle: 4 });
        const killed = await killSessions(admin);
        expect(killed).toHaveLength(4);
        await waitFor('killed sessions gone on the server', async () => (await sessions()) === 0);
        const failures: { i: number; code: string }[] = [];
        for (let i = 0; i < 100; i++) {
          try {
            const r = await db.query('db', `select ${p(1)} as v`, [i]);
            expect(Number(r.rows[0].v)).toBe(i);
          } catch (err) {
            expect(err).toBeInstanceOf(BrokerError);
            failures.push({ i, code: (err as BrokerError).code });
          }
        }
        expect(failures.length).toBeLessThanOrEqual(1);
        if (failures.length === 1) expect(failures[0]).toEqual({ i: 0, code: 'CONNECTION_LOST' });
        // Evicted: the pool's count is the server's, within the cap.
        await waitFor('pool and server agree', async () => broker!.stats().databases.db.open === (await sessions()));
        expect(broker.stats().databases.db).toMatchObject({ busy: 0, waiting: 0 });
        expect(broker.stats().databases.db.open).toBeGreaterThanOrEqual(1);
        console.log(`[core-lifecycle] ${kind}: killed 4 idle sessions, errors in next 100 queries: ${failures.length}`);
      }
    });

    it('a connection killed mid-statement rejects its caller at once with CONNECTION_LOST; other work goes on', async () => {
      broker = await Broker.start(configFor(kind, { max: 2, acquireTimeoutMillis: 20_000 }));
      const db = broker.connect();
      const c = new Commander(broker);
      await c.ready;
      const held = await holdConnections(1);
      // Another thread's query still runs on the second connection.
      expect(Number(((await c.query('w1', `select ${p(1)} as v`, [5]).reply).ok as { v: unknown }[])[0].v)).toBe(5);
      const outcome = held[0].then(() => undefined, (e: unknown) => e);
      const t0 = performance.now();
      const killed = await killSessions(admin, `%${GATE} where id = 2 for update%`);
      expect(killed).toHaveLength(1);
      const err = await outcome;
      const took = performance.now() - t0;
      expect(err).toBeInstanceOf(BrokerError);
      expect((err as BrokerError).code).toBe('CONNECTION_LOST');
      expect(took).toBeLessThan(1_000);
      expect(Number(((await c.query('w2', `select ${p(1)} as v`, [6]).reply).ok as { v: unknown }[])[0].v)).toBe(6);
      await expect(db.query('db', 'select 1 as one')).resolves.toMatchObject({ rows: [{ one: 1 }] });
      await waitFor('pool and server agree', async () => broker!.stats().databases.db.open === (await sessions()));
      expect(broker.stats().databases.db).toMatchObject({ busy: 0, waiting: 0 });
      await c.exit();
      console.log(`[core-lifecycle] ${kind}: busy session killed, caller rejected after ${took.toFixed(1)} ms`);
    });

    it('a worker terminated mid-query leaves nothing pending', async () => {
      broker = await Broker.start(configFor(kind, { max: 2, acquireTimeoutMillis: 20_000 }));
      const db = broker.connect();
      const c = new Commander(broker);
      await c.ready;
      await gate.hold();
      for (let i = 0; i < 2; i++) await c.query(`g${i}`, gate.sql).sent;
      await waitFor('2 worker statements blocked on the gate', async () => (await gate.blocked()) === 2);
      for (let i = 0; i < 10; i++) await c.query(`q${i}`, `select ${p(1)} as v`, [i]).sent;
      await waitFor('10 worker requests waiting', () => broker!.stats().databases.db.waiting === 10);
      const exited = new Promise<number>((r) => c.worker.once('exit', r));
      await c.worker.terminate();
      await exited;
      // The dead thread's queued requests are dropped at once, not run later for nobody.
      await waitFor('no waiters after the thread died', () => broker!.stats().databases.db.waiting === 0, 2_000);
      // A live thread queued now is served first when a connection frees.
      const mine = db.query('db', `select ${p(1)} as v`, [99]);
      await waitFor('1 waiter', () => broker!.stats().databases.db.waiting === 1);
      await gate.open();
      expect(Number((await mine).rows[0].v)).toBe(99);
      await waitFor('busy 0 / waiting 0', () => {
        const s = broker!.stats().databases.db;
        return s.busy === 0 && s.waiting === 0;
      });
      // The pool keeps serving, main thread and a new worker alike.
      await expect(db.query('db', 'select 1 as one')).resolves.toMatchObject({ rows: [{ one: 1 }] });
      const c2 = new Commander(broker);
      await c2.ready;
      expect((await c2.query('x', 'select 2 as two').reply).ok).toEqual([{ two: 2 }]);
      await c2.exit();
      const t0 = performance.now();
      await broker.close();
      const took = performance.now() - t0;
      broker = undefined;
      expect(took).toBeLessThan(2_000);
      expect(await sessions()).toBe(0);
    });

    it('close(): new work refused with BROKER_CLOSED (main and worker), queued work settled at once, in-flight work finishes, resolves within a bound', async () => {
      broker = await Broker.start(configFor(kind, { max: 2, acquireTimeoutMillis: 20_000 }), { closeTimeoutMillis: 5_000 });
      const b = broker;
      const db = b.connect();
      const c = new Commander(b);
      await c.ready;
      expect((await c.query('before', 'select 1 as one').reply).ok).toEqual([{ one: 1 }]);
      const held = await holdConnections(2);
      const queuedMain = [1, 2, 3].map((i) => db.query('db', `select ${p(1)} as v`, [i]).then(() => 'ok', (e: unknown) => (e as BrokerError).code));
      const queuedWorker: Promise<Reply>[] = [];
      for (let i = 0; i < 2; i++) {
        const q = c.query(`qw${i}`, `select ${p(1)} as v`, [i]);
        await q.sent;
        queuedWorker.push(q.reply);
      }
      await waitFor('5 waiters', () => b.stats().databases.db.waiting === 5);
      const t0 = performance.now();
      let closed = false;
      const closing = b.close().then(() => {
        closed = true;
      });
      expect(b.close()).toBe(b.close()); // idempotent
      // New work: refused at once.
      for (const make of [() => b.connect(), () => b.port(), () => b.worker(COMMANDER), () => b.piscina({ filename: 'x' })]) {
        let thrown: unknown;
        try {
          make();
        } catch (e) {
          thrown = e;
        }
        expect(thrown).toBeInstanceOf(BrokerError);
        expect((thrown as BrokerError).code).toBe('BROKER_CLOSED');
      }
      await expect(db.query('db', 'select 1')).rejects.toMatchObject({ code: 'BROKER_CLOSED' });
      expect((await c.query('after', 'select 1').reply).error).toMatchObject({ isBrokerError: true, code: 'BROKER_CLOSED' });
      // Queued work: settled at once, with BROKER_CLOSED, while the gate is still closed.
      expect(await Promise.all(queuedMain)).toEqual(['BROKER_CLOSED', 'BROKER_CLOSED', 'BROKER_CLOSED']);
      for (const r of await Promise.all(queuedWorker)) expect(r.error).toMatchObject({ isBrokerError: true, code: 'BROKER_CLOSED' });
      expect(closed).toBe(false);
      expect(await gate.blocked()).toBe(2);
      // In-flight work finishes with its result, then close() resolves.
      await gate.open();
      const results = await Promise.all(held);
      expect(results).toHaveLength(2);
      await closing;
      const took = performance.now() - t0;
      broker = undefined;
      expect(took).toBeLessThan(5_000);
      expect(await sessions()).toBe(0);
      // From the worker, after close: still BROKER_CLOSED, and the thread can exit.
      expect((await c.query('later', 'select 1').reply).error).toMatchObject({ isBrokerError: true, code: 'BROKER_CLOSED' });
      await c.exit();
      console.log(`[core-lifecycle] ${kind}: close() with 2 in flight + 5 queued resolved in ${took.toFixed(0)} ms`);
    });

    it('close(): statements that never finish are cut at the close timeout with a typed error', async () => {
      const CLOSE = 400;
      broker = await Broker.start(configFor(kind, { max: 2, acquireTimeoutMillis: 20_000 }), { closeTimeoutMillis: CLOSE });
      const held = (await holdConnections(2)).map((q) => q.then(() => 'ok', (e: unknown) => (e instanceof BrokerError ? e.code : String(e))));
      const t0 = performance.now();
      await broker.close();
      const took = performance.now() - t0;
      broker = undefined;
      expect(took).toBeGreaterThanOrEqual(CLOSE - 5);
      expect(took).toBeLessThan(CLOSE + 1_000);
      const codes = await Promise.all(held);
      for (const code of codes) expect(['BROKER_CLOSED', 'CONNECTION_LOST']).toContain(code);
      await gate.open();
      // The server notices the cut sessions once their statement ends.
      await waitFor('cut sessions gone on the server', async () => (await sessions()) === 0, 5_000);
      console.log(`[core-lifecycle] ${kind}: close() cut 2 stuck statements after ${took.toFixed(0)} ms (closeTimeoutMillis ${CLOSE}): ${codes.join(', ')}`);
    });

    it('close(): an open reservation is rolled back', async () => {
      await admin.rows(kind === 'pg' ? `truncate ${TX}` : `truncate table ${TX}`);
      broker = await Broker.start(configFor(kind, { max: 2 }));
      const db = broker.connect();
      const r = await db.reserve('db');
      await r.begin();
      await r.query(`insert into ${TX} (v) values (${p(1)})`, [1]);
      await broker.close();
      broker = undefined;
      expect(await admin.rows(`select v from ${TX}`)).toEqual([]);
      expect(await sessions()).toBe(0);
      await expect(r.query('select 1')).rejects.toBeInstanceOf(BrokerError);
    });

    it.each([
      ['main thread, plain worker, comlink module and an open reservation', CHILD, []],
      ['piscina and tinypool pools the program never destroys', CHILD_POOLS, []],
      ['piscina and tinypool pools destroyed after close()', CHILD_POOLS, ['destroy']],
    ])('a child process that starts a broker, queries (%s) and closes exits on its own', async (_what, file, extra) => {
      const config = configFor(kind, { max: 2 });
      const child = spawn(process.execPath, [file, JSON.stringify(config), ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      const t0 = performance.now();
      const code = await new Promise<number | string>((resolve) => {
        const timer = setTimeout(() => {
          child.kill('SIGKILL');
          resolve('timeout: the child did not exit on its own within 15 s');
        }, 15_000);
        child.once('exit', (c, sig) => {
          clearTimeout(timer);
          resolve(c ?? String(sig));
        });
      });
      const took = performance.now() - t0;
      expect({ code, err }).toEqual({ code: 0, err: '' });
      expect(out).toContain('closed');
      await waitFor('no broker sessions on the server', async () => (await sessions()) === 0, 2_000);
      console.log(`[core-lifecycle] ${kind}: child process (${_what}) exited on its own ${took.toFixed(0)} ms after start`);
    });
  });
}
