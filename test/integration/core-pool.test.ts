/**
 * Broker core, the pool's promises (RELIABILITY.md L2 and HikariCP's pool tests): the acquire
 * deadline (never early, bounded late, message with the pool state), the queue limit, FIFO
 * grants across threads, idle timeout, max lifetime, rollback of a transaction left open by a
 * plain query, stats() and metrics().
 *
 * Interleavings are driven, not slept on: a "gate" (an admin transaction holding a row lock)
 * keeps broker connections busy until the test opens it, and each step waits (bounded) for the
 * state it needs on the server or in `broker.stats()`.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Broker, BrokerError } from 'threadbroker';
import { BROKER_USER, KINDS, configFor, ph, serverCountSql } from '../helpers/test-setup.js';
import { Admin, Commander, GATE, Gate, waitFor } from '../helpers/core-harness.js';

// Per-login table names: a concurrent run of this file under another login (the lead's full run)
// must not share rows, locks or sequences with this one.
const FIFO = `core_fifo_${BROKER_USER}`;
const TX = `core_tx_${BROKER_USER}`;

for (const kind of KINDS) {
  describe(`${kind}: pool deadlines, limits, order, lifetimes, reset, figures`, () => {
    let admin: Admin;
    let gate: Gate;
    let broker: Broker | undefined;
    const p = (i: number): string => ph(kind, i);

    beforeAll(async () => {
      admin = await new Admin(kind).open();
      if (kind === 'pg') {
        await admin.rows(`create table if not exists ${GATE} (id int primary key)`);
        await admin.rows(`create table if not exists ${FIFO} (id serial primary key, tag int not null)`);
        await admin.rows(`create table if not exists ${TX} (v int not null)`);
        await admin.rows(`grant all on ${GATE}, ${FIFO}, ${TX} to ${BROKER_USER}`);
        await admin.rows(`grant all on sequence ${FIFO}_id_seq to ${BROKER_USER}`);
        await admin.rows(`insert into ${GATE} values (1), (2), (3) on conflict do nothing`);
      } else {
        await admin.rows(`create table if not exists ${GATE} (id int primary key) engine=innodb`);
        await admin.rows(`create table if not exists ${FIFO} (id int auto_increment primary key, tag int not null) engine=innodb`);
        await admin.rows(`create table if not exists ${TX} (v int not null) engine=innodb`);
        await admin.rows(`insert ignore into ${GATE} values (1), (2), (3)`);
      }
      gate = await new Gate(kind, 1).init();
    });

    afterEach(async () => {
      await gate.open();
      await broker?.close();
      broker = undefined;
      // No test may leave sessions behind for the next one.
      await waitFor('no broker sessions on the server', async () => (await admin.scalar(serverCountSql(kind))) === 0);
    });

    afterAll(async () => {
      await gate.close();
      await admin.rows(`drop table if exists ${GATE}, ${FIFO}, ${TX}`);
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

    it('acquire deadline: ACQUIRE_TIMEOUT never before T, at most T + slack after, with the pool state', async () => {
      const T = 250;
      broker = await Broker.start(configFor(kind, { max: 2, acquireTimeoutMillis: T }));
      const db = broker.connect();
      const held = await holdConnections(2);
      expect(broker.stats().databases.db).toMatchObject({ open: 2, busy: 2, idle: 0, waiting: 0 });
      const elapsed: number[] = [];
      for (let i = 0; i < 6; i++) {
        const t0 = performance.now();
        const err = await db.query('db', 'select 1').then(() => undefined, (e: unknown) => e);
        elapsed.push(performance.now() - t0);
        expect(err).toBeInstanceOf(BrokerError);
        expect((err as BrokerError).code).toBe('ACQUIRE_TIMEOUT');
        expect((err as BrokerError).message).toMatch(new RegExp(`${T}ms.*pool=db, max=2, open=2, idle=0, busy=2, waiting=`));
      }
      // Two at once, and one from a worker thread: each on its own deadline.
      const c = new Commander(broker);
      await c.ready;
      const t0 = performance.now();
      const fromWorker = c.query('w', 'select 1');
      const both = await Promise.all([db.query('db', 'select 1').catch((e: unknown) => e), db.query('db', 'select 2').catch((e: unknown) => e), fromWorker.reply]);
      const e3 = performance.now() - t0;
      expect((both[0] as BrokerError).code).toBe('ACQUIRE_TIMEOUT');
      expect((both[1] as BrokerError).code).toBe('ACQUIRE_TIMEOUT');
      expect(both[2].error).toMatchObject({ isBrokerError: true, code: 'ACQUIRE_TIMEOUT' });
      expect(e3).toBeGreaterThanOrEqual(T);
      console.log(`[core-pool] ${kind}: ACQUIRE_TIMEOUT at T=${T}ms after ${elapsed.map((e) => e.toFixed(1)).join(', ')} ms (overshoot max ${(Math.max(...elapsed) - T).toFixed(1)} ms)`);
      for (const e of elapsed) {
        expect(e).toBeGreaterThanOrEqual(T);
        expect(e).toBeLessThanOrEqual(T + 150);
      }
      // The held statements still complete once the gate opens, and nothing leaked.
      await gate.open();
      await expect(Promise.all(held)).resolves.toHaveLength(2);
      await c.exit();
      await waitFor('pool drained', () => broker!.stats().databases.db.busy === 0);
      expect(broker.stats().databases.db).toMatchObject({ open: 2, idle: 2, busy: 0, waiting: 0 });
      expect(broker.metrics()).toMatch(/^threadbroker_acquire_timeouts_total\{database="db"\} 9$/m);
      await expect(db.query('db', 'select 1 as one')).resolves.toMatchObject({ rows: [{ one: 1 }] });
    });

    it('queueLimit: requests past the limit fail at once with QUEUE_FULL; after the burst all succeed', async () => {
      broker = await Broker.start(configFor(kind, { max: 2, queueLimit: 3, acquireTimeoutMillis: 20_000 }));
      const db = broker.connect();
      const c = new Commander(broker);
      await c.ready;
      const held = await holdConnections(2);
      const queued = [1, 2, 3].map((i) => db.query('db', `select ${p(1)} as v`, [i]));
      await waitFor('3 waiters', () => broker!.stats().databases.db.waiting === 3);
      // Past the limit: refused at once, while the gate is still closed.
      const t0 = performance.now();
      const refused = await Promise.all([4, 5, 6, 7, 8].map((i) => db.query('db', `select ${p(1)} as v`, [i]).then(() => undefined, (e: unknown) => e)));
      const fromWorker = await c.query('w', `select ${p(1)} as v`, [9]).reply;
      const took = performance.now() - t0;
      for (const e of refused) {
        expect(e).toBeInstanceOf(BrokerError);
        expect((e as BrokerError).code).toBe('QUEUE_FULL');
        expect((e as BrokerError).message).toMatch(/limit of 3 .*pool=db, max=2, open=2, idle=0, busy=2, waiting=3/);
      }
      expect(fromWorker.error).toMatchObject({ isBrokerError: true, code: 'QUEUE_FULL' });
      expect(took).toBeLessThan(500);
      expect(await gate.blocked()).toBe(2);
      expect(broker.stats().databases.db.waiting).toBe(3);
      // The burst ends: the held and the queued all succeed.
      await gate.open();
      await expect(Promise.all(held)).resolves.toHaveLength(2);
      expect((await Promise.all(queued)).map((r) => Number(r.rows[0].v))).toEqual([1, 2, 3]);
      // Within the limit, everything succeeds, from both threads.
      for (let round = 0; round < 5; round++) {
        const rs = await Promise.all([0, 1, 2, 3, 4].map((i) => db.query('db', `select ${p(1)} as v`, [round * 10 + i])));
        expect(rs.map((r) => Number(r.rows[0].v))).toEqual([0, 1, 2, 3, 4].map((i) => round * 10 + i));
      }
      const last = await c.query('w2', `select ${p(1)} as v`, [42]).reply;
      expect(Number((last.ok as { v: unknown }[])[0].v)).toBe(42);
      expect(broker.metrics()).toMatch(/^threadbroker_queue_full_total\{database="db"\} 6$/m);
      expect(broker.stats().databases.db).toMatchObject({ busy: 0, waiting: 0 });
      await c.exit();
    });

    it('FIFO: connections are granted in request order, across threads', async () => {
      await admin.rows(kind === 'pg' ? `truncate ${FIFO} restart identity` : `truncate table ${FIFO}`);
      broker = await Broker.start(configFor(kind, { max: 1, acquireTimeoutMillis: 20_000 }));
      const db = broker.connect();
      const a = new Commander(broker);
      const b = new Commander(broker);
      await Promise.all([a.ready, b.ready]);
      const held = await holdConnections(1);
      const insert = `insert into ${FIFO} (tag) values (${p(1)})`;
      const N = 12;
      const replies: Promise<unknown>[] = [];
      const answered: number[] = [];
      for (let tag = 1; tag <= N; tag++) {
        const from = tag % 3;
        let reply: Promise<unknown>;
        if (from === 0) {
          reply = db.query('db', insert, [tag]);
        } else {
          const r = (from === 1 ? a : b).query(String(tag), insert, [tag]);
          await r.sent;
          reply = r.reply.then((m) => {
            if (m.error) throw new Error(String(m.error.message));
          });
        }
        replies.push(reply.then(() => void answered.push(tag)));
        // The next request is made only once this one waits in the pool.
        await waitFor(`request ${tag} waiting`, () => broker!.stats().databases.db.waiting === tag);
      }
      await gate.open();
      await Promise.all([...held, ...replies]);
      const order = (await admin.rows(`select tag from ${FIFO} order by id`)).map((r) => Number(r.tag));
      expect(order).toEqual(Array.from({ length: N }, (_, i) => i + 1));
      // Replies to the main thread arrive in grant order too.
      expect(answered.filter((t) => t % 3 === 0)).toEqual([3, 6, 9, 12]);
      // Every queued request was timed in the wait histogram.
      const count = /^threadbroker_acquire_wait_seconds_count\{database="db"\} (\d+)$/m.exec(broker.metrics());
      expect(Number(count?.[1])).toBeGreaterThanOrEqual(N);
      await Promise.all([a.exit(), b.exit()]);
    });

    it('idleTimeoutMillis closes idle connections (not before the timeout)', async () => {
      const IDLE = 300;
      broker = await Broker.start(configFor(kind, { max: 4, idleTimeoutMillis: IDLE }));
      const held = await holdConnections(4);
      const opened = Date.now();
      await gate.open();
      await Promise.all(held);
      const s = broker.stats().databases.db;
      expect(s).toMatchObject({ open: 4, idle: 4, busy: 0 });
      await waitFor('idle connections closed', () => broker!.stats().databases.db.open === 0, 5_000);
      const dropped = Date.now() - opened;
      expect(dropped).toBeGreaterThanOrEqual(IDLE);
      expect(dropped).toBeLessThanOrEqual(IDLE + 500);
      await waitFor('sessions gone on the server', async () => (await admin.scalar(serverCountSql(kind))) === 0, 5_000);
      // The pool opens again on demand.
      await expect(broker.connect().query('db', 'select 1 as one')).resolves.toMatchObject({ rowCount: 1 });
      console.log(`[core-pool] ${kind}: idle connections closed ${dropped} ms after last use (idleTimeoutMillis ${IDLE})`);
    });

    it('maxLifetimeMillis retires connections: idle ones by the sweeper, busy ones when they come back', async () => {
      const LIFE = 400;
      broker = await Broker.start(configFor(kind, { max: 1, maxLifetimeMillis: LIFE, idleTimeoutMillis: 0 }));
      const db = broker.connect();
      const pidSql = kind === 'pg' ? 'select pg_backend_pid() as pid' : 'select connection_id() as pid';
      const t0 = Date.now();
      const first = Number((await db.query('db', pidSql)).rows[0].pid);
      // Idle: the same session until the lifetime ends, then a new one.
      let pid = first;
      const deadline = Date.now() + LIFE + 3_000;
      while (pid === first && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 10));
        pid = Number((await db.query('db', pidSql)).rows[0].pid);
      }
      const changedAt = Date.now() - t0;
      expect(pid).not.toBe(first);
      expect(changedAt).toBeGreaterThanOrEqual(LIFE * 0.975);
      expect(changedAt).toBeLessThanOrEqual(LIFE + 300);
      const gone = kind === 'pg' ? 'select count(*)::int from pg_stat_activity where pid = $1' : 'select count(*) from information_schema.processlist where id = ?';
      await waitFor('retired session gone on the server', async () => (await admin.scalar(gone, [first])) === 0, 5_000);
      // Busy past its lifetime: never cut short, retired when it comes back.
      await gate.hold();
      const born = Date.now();
      const pidOfHeld = kind === 'pg' ? `select id, pg_backend_pid() as pid from ${GATE} where id = 1 for update` : `select id, connection_id() as pid from ${GATE} where id = 1 for update`;
      const second = Number((await db.query('db', pidSql)).rows[0].pid);
      const heldQuery = db.query('db', pidOfHeld);
      await waitFor('held statement blocked', async () => (await gate.blocked()) === 1);
      // The connection was opened before `born`: once this passes, it is past its lifetime.
      await waitFor('lifetime passed', () => Date.now() - born > LIFE + 50, LIFE + 1_000);
      await gate.open();
      const heldPid = Number((await heldQuery).rows[0].pid);
      const after = Number((await db.query('db', pidSql)).rows[0].pid);
      console.log(`[core-pool] ${kind}: connection retired ${changedAt} ms after opening (maxLifetimeMillis ${LIFE})`);
      // The held statement finished on its (expired) connection; a fresh one served the next query.
      expect(heldPid).toBe(second);
      expect(after).not.toBe(heldPid);
      expect(broker.stats().databases.db).toMatchObject({ busy: 0, waiting: 0 });
    });

    it('a transaction left open by a plain query is rolled back when the connection returns', async () => {
      await admin.rows(kind === 'pg' ? `truncate ${TX}` : `truncate table ${TX}`);
      broker = await Broker.start(configFor(kind, { max: 1 }));
      const db = broker.connect();
      const pidSql = kind === 'pg' ? 'select pg_backend_pid() as pid' : 'select connection_id() as pid';
      const pid = Number((await db.query('db', pidSql)).rows[0].pid);
      // The next plain query on the same connection must see no transaction.
      const noTx = kind === 'pg'
        ? 'select now() = statement_timestamp() as fresh, txid_current_if_assigned() as xid, pg_backend_pid() as pid'
        : 'select @@in_transaction = 0 and @@autocommit = 1 as fresh, null as xid, connection_id() as pid';
      const check = async (): Promise<void> => {
        const r = (await db.query('db', noTx)).rows[0];
        expect(Number(r.pid)).toBe(pid);
        expect(Boolean(Number(r.fresh) || r.fresh === true)).toBe(true);
        expect(r.xid).toBeNull();
      };
      await db.query('db', 'BEGIN');
      await check();
      await db.query('db', kind === 'pg' ? 'START TRANSACTION ISOLATION LEVEL SERIALIZABLE' : 'START TRANSACTION');
      await check();
      if (kind === 'pg') {
        // A write inside a transaction left open is rolled back, not committed by the next user.
        await db.query('db', `BEGIN; insert into ${TX} (v) values (1)`);
        await check();
        // A failed transaction (aborted state) is rolled back too.
        await db.query('db', 'BEGIN; select 1/0').catch(() => undefined);
        await check();
      } else {
        // MySQL: autocommit switched off by a plain query is switched back on (an implicit
        // transaction would otherwise start with the next user's first statement).
        await db.query('db', 'SET autocommit = 0');
        await check();
        await db.query('db', 'BEGIN');
        await check();
      }
      await db.query('db', `insert into ${TX} (v) values (2)`);
      expect((await admin.rows(`select v from ${TX} order by v`)).map((r) => Number(r.v))).toEqual([2]);
      const idleInTx = kind === 'pg'
        ? `select count(*)::int from pg_stat_activity where usename = '${BROKER_USER}' and state like 'idle in transaction%'`
        : `select count(*) from information_schema.innodb_trx t join information_schema.processlist p on p.id = t.trx_mysql_thread_id where p.user = '${BROKER_USER}'`;
      expect(await admin.scalar(idleInTx)).toBe(0);
    });

    it('stats() and metrics() report the live figures, Prometheus style', async () => {
      broker = await Broker.start(configFor(kind, { max: 2, acquireTimeoutMillis: 20_000 }));
      const db = broker.connect();
      expect(broker.stats()).toEqual({ databases: { db: { max: 2, open: 0, idle: 0, busy: 0, waiting: 0, reserved: 0 } } });
      const held = await holdConnections(2);
      const queued = db.query('db', 'select 1');
      await waitFor('1 waiter', () => broker!.stats().databases.db.waiting === 1);
      expect(broker.stats()).toEqual({ databases: { db: { max: 2, open: 2, idle: 0, busy: 2, waiting: 1, reserved: 0 } } });
      const m = broker.metrics();
      for (const [g, v] of [['max', 2], ['open', 2], ['idle', 0], ['busy', 2], ['waiting', 1], ['reserved', 0]] as const) {
        expect(m).toContain(`# TYPE threadbroker_connections_${g} gauge`);
        expect(m).toMatch(new RegExp(`^threadbroker_connections_${g}\\{database="db"\\} ${v}$`, 'm'));
      }
      await gate.open();
      await Promise.all([...held, queued]);
      const r = await db.database('db').reserve();
      await r.query('select 1');
      expect(broker.stats().databases.db.reserved).toBe(1);
      await r.release();
      expect(broker.stats().databases.db).toMatchObject({ max: 2, open: 2, busy: 0, waiting: 0, reserved: 0 });
      const text = broker.metrics();
      expect(text.endsWith('\n')).toBe(true);
      for (const h of ['threadbroker_acquire_wait_seconds', 'threadbroker_connection_hold_seconds']) {
        expect(text).toContain(`# TYPE ${h} histogram`);
        const buckets = [...text.matchAll(new RegExp(`^${h}_bucket\\{database="db",le="([^"]+)"\\} (\\d+)$`, 'gm'))];
        expect(buckets.length).toBeGreaterThan(5);
        expect(buckets.at(-1)![1]).toBe('+Inf');
        const counts = buckets.map((b) => Number(b[2]));
        expect(counts).toEqual([...counts].sort((x, y) => x - y)); // cumulative
        const count = Number(new RegExp(`^${h}_count\\{database="db"\\} (\\d+)$`, 'm').exec(text)?.[1]);
        expect(counts.at(-1)).toBe(count);
        expect(Number(new RegExp(`^${h}_sum\\{database="db"\\} ([0-9.e+-]+)$`, 'm').exec(text)?.[1])).toBeGreaterThan(0);
      }
      // Hold times: the 2 held + 1 queued statement + the reservation's checkout, at least.
      expect(Number(/^threadbroker_connection_hold_seconds_count\{database="db"\} (\d+)$/m.exec(text)?.[1])).toBeGreaterThanOrEqual(4);
      expect(text).toMatch(/^threadbroker_connections_created_total\{database="db"\} 2$/m);
      // Every sample line is `name{labels} value` or a HELP/TYPE comment.
      for (const line of text.trimEnd().split('\n')) expect(line).toMatch(/^(# (HELP|TYPE) \w+ .+|\w+(\{[^}]*\})? -?[0-9.e+-]+|\w+(\{[^}]*\})? \+?Inf)$/);
    });
  });
}
