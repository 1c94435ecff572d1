/**
 * One transaction across threads (issue 3, item 11): reserve in worker A, attach and write in
 * worker B, commit in worker C — three piscina tasks kept running at once, so they are on three
 * different threads (checked by threadId) — while a concurrent reader never sees uncommitted rows.
 * And statements sent on one token from two threads at once run one at a time, never interleaved
 * (checked with server-side clocks).
 */
import { MessageChannel } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Broker, type Db } from 'threadbroker';
import type { DriverKind } from '../../src/config/types.js';
import { AGENT, Agent } from '../helpers/agent.js';
import { BROKER_USER, KINDS, configFor, ph } from '../helpers/test-setup.js';

/** The table of this file, per broker login, so concurrent runs under other logins never share it. */
const TABLE = `rsv_cross_${BROKER_USER}`;

/** SQL of the server session id, named `sid`. */
const sessionSql = (kind: DriverKind) => (kind === 'pg' ? 'select pg_backend_pid() as sid' : 'select connection_id() as sid');

for (const kind of KINDS) {
  describe(`${kind}: a reservation used from several threads`, () => {
    let broker: Broker;
    let db: Db;

    beforeAll(async () => {
      broker = await Broker.start(configFor(kind, { max: 4 }));
      db = broker.connect();
      await db.query('db', `drop table if exists ${TABLE}`);
      await db.query('db', `create table ${TABLE} (id int primary key, who varchar(10))`);
    });

    afterAll(async () => {
      await broker.close();
    });

    it('reserves in A, writes in B, commits in C (three piscina threads); a reader never sees uncommitted rows', async () => {
      const pool = broker.piscina({ filename: AGENT.href, minThreads: 3, maxThreads: 3 });
      const agents: Agent[] = [];
      const tasks: Promise<unknown>[] = [];
      for (let i = 0; i < 3; i++) {
        const { port1, port2 } = new MessageChannel();
        agents.push(new Agent(port1));
        tasks.push(pool.run({ port: port2 }, { transferList: [port2] }));
      }
      const [A, B, C] = agents;
      const threads = await Promise.all(agents.map((a) => a.ready));
      // Each task runs until told `done`, so the three hold three threads at once.
      expect(new Set(threads).size).toBe(3);
      expect(threads).not.toContain(0);

      // The concurrent reader: reads in a loop during the whole transaction.
      const seen: { n: number; startedBeforeCommit: boolean }[] = [];
      let committing = false;
      let stop = false;
      const reader = (async () => {
        for (let i = 0; i < 10_000 && !stop; i++) {
          const startedBeforeCommit = !committing;
          const { rows } = await db.query<{ n: unknown }>('db', `select count(*) as n from ${TABLE}`);
          seen.push({ n: Number(rows[0].n), startedBeforeCommit });
        }
      })();
      const count = async () => Number((await db.query<{ n: unknown }>('db', `select count(*) as n from ${TABLE}`)).rows[0].n);

      await A.call('reserve', { key: 'r' });
      await A.call('begin', { key: 'r' });
      await A.call('query', { key: 'r', sql: `insert into ${TABLE} values (1, ${ph(kind, 1)})`, params: ['A'] });
      const sidA = (await A.call<{ sid: unknown }[]>('query', { key: 'r', sql: sessionSql(kind) }))[0].sid;
      const token = await A.call<string>('token', { key: 'r' });
      expect(await count()).toBe(0);

      await B.call('attach', { key: 'r', token });
      await B.call('query', { key: 'r', sql: `insert into ${TABLE} values (2, ${ph(kind, 1)})`, params: ['B'] });
      const sidB = (await B.call<{ sid: unknown }[]>('query', { key: 'r', sql: sessionSql(kind) }))[0].sid;
      // B sees A's uncommitted row: the same connection, the same transaction.
      expect(await B.call('query', { key: 'r', sql: `select id from ${TABLE} order by id` })).toEqual([{ id: 1 }, { id: 2 }]);
      expect(await count()).toBe(0);

      await C.call('attach', { key: 'r', token });
      const sidC = (await C.call<{ sid: unknown }[]>('query', { key: 'r', sql: sessionSql(kind) }))[0].sid;
      expect(new Set([sidA, sidB, sidC]).size).toBe(1);
      expect(await count()).toBe(0);
      committing = true;
      await C.call('commit', { key: 'r' });
      expect(await count()).toBe(2);
      // The token named that transaction; it is over, so A's and B's handles are refused,
      // while C goes on under the reservation's new generation and releases it.
      await expect(B.call('query', { key: 'r', sql: 'select 1' })).rejects.toMatchObject({ code: 'TOKEN_EXPIRED' });
      await expect(A.call('attach', { key: 'again', token })).rejects.toMatchObject({ code: 'TOKEN_EXPIRED' });
      await C.call('release', { key: 'r' });
      await expect(A.call('release', { key: 'r' })).rejects.toMatchObject({ code: 'TOKEN_EXPIRED' });
      stop = true;
      await reader;

      expect(seen.length).toBeGreaterThan(0);
      // Never a partial or an uncommitted state: 0 before the commit, 2 after, nothing else.
      expect(seen.every((s) => s.n === 0 || s.n === 2)).toBe(true);
      expect(seen.filter((s) => s.startedBeforeCommit).every((s) => s.n === 0)).toBe(true);
      expect(broker.stats().databases.db.reserved).toBe(0);
      expect((await db.query('db', `select who from ${TABLE} order by id`)).rows).toEqual([{ who: 'A' }, { who: 'B' }]);

      for (const a of agents) void a.call('done').catch(() => undefined);
      const ended = (await Promise.all(tasks)) as { threadId: number }[];
      expect(ended.map((e) => e.threadId)).toEqual(threads);
      await pool.destroy();
    });

    it('never runs another query on a reserved connection (invariant 2, checked by server session ids)', async () => {
      const workers = [0, 1, 2].map(() => broker.worker(AGENT, { workerData: { agent: true } }));
      try {
        const agents = workers.map((w) => new Agent(w));
        await Promise.all(agents.map((a) => a.ready));
        const reservations = await Promise.all([0, 1].map(() => db.reserve('db')));
        const held = new Set<unknown>();
        for (const r of reservations) held.add((await r.query<{ sid: unknown }>(sessionSql(kind))).rows[0].sid);
        expect(held.size).toBe(2);
        // Three threads × 60 plain queries at once, while the reservations keep running their own.
        const plain = agents.flatMap((a) => Array.from({ length: 60 }, () => a.call<{ sid: unknown }[]>('query', { sql: sessionSql(kind) })));
        const own = reservations.flatMap((r) => Array.from({ length: 30 }, () => r.query<{ sid: unknown }>(sessionSql(kind))));
        const plainSids = (await Promise.all(plain)).map((rows) => rows[0].sid);
        const ownSids = (await Promise.all(own)).map((res) => res.rows[0].sid);
        expect(plainSids.filter((sid) => held.has(sid))).toEqual([]);
        expect(new Set(ownSids)).toEqual(held);
        await Promise.all(reservations.map((r) => r.release()));
      } finally {
        await Promise.all(workers.map((w) => w.terminate()));
      }
    });

    it('runs the statements of one token sent from two threads at once one at a time, in each thread\'s order', async () => {
      const workers = [0, 1].map(() => broker.worker(AGENT, { workerData: { agent: true } }));
      try {
        const [X, Y] = workers.map((w) => new Agent(w));
        await Promise.all([X.ready, Y.ready]);
        await X.call('reserve', { key: 'r' });
        const token = await X.call<string>('token', { key: 'r' });
        await Y.call('attach', { key: 'r', token });
        // Server clocks in microseconds, before and after a short sleep inside each statement.
        const sql = kind === 'pg'
          ? `select ${ph(kind, 1)}::text as tag, (extract(epoch from clock_timestamp()) * 1000000)::bigint::text as s, pg_sleep(0.002)::text as z, (extract(epoch from clock_timestamp()) * 1000000)::bigint::text as e`
          : `select ${ph(kind, 1)} as tag, cast(unix_timestamp(sysdate(6)) * 1000000 as char) as s, sleep(0.002) as z, cast(unix_timestamp(sysdate(6)) * 1000000 as char) as e`;
        const burst = (agent: Agent, name: string) => Array.from({ length: 25 }, (_, i) => agent.call<{ tag: string; s: string; e: string }[]>('query', { key: 'r', sql, params: [`${name}${String(i).padStart(2, '0')}`] }));
        // Sent without waiting: both threads' statements are in flight together.
        const rows = (await Promise.all([...burst(X, 'x'), ...burst(Y, 'y')])).map((r) => r[0]);
        const runs = rows.map((r) => ({ tag: r.tag, s: BigInt(r.s.split('.')[0]), e: BigInt(r.e.split('.')[0]) })).sort((a, b) => (a.s < b.s ? -1 : a.s > b.s ? 1 : 0));
        for (let i = 1; i < runs.length; i++) expect(runs[i].s, `${runs[i - 1].tag} overlaps ${runs[i].tag}`).toBeGreaterThanOrEqual(runs[i - 1].e);
        for (const name of ['x', 'y']) {
          const order = runs.filter((r) => r.tag.startsWith(name)).map((r) => r.tag);
          expect(order).toEqual([...order].sort());
        }
        await X.call('release', { key: 'r' });
      } finally {
        await Promise.all(workers.map((w) => w.terminate()));
      }
    });
  });
}
