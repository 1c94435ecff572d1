/**
 * The reliability suite's representative subset for `npm test` (no server restarts), and the
 * regression tests of what the suite found and added (RELIABILITY.md F2, F6, S6):
 *
 * - a connection lost while COMMIT is in flight answers COMMIT_OUTCOME_UNKNOWN (with the
 *   transaction id on PostgreSQL), never TX_CONNECTION_LOST ("rolled back"): the server may have
 *   committed; the outcome is then settled with pg_xact_status or by looking the write up;
 * - a statement stuck on a black-holed connection (no FIN, no RST) ends at queryTimeoutMillis
 *   with QUERY_TIMEOUT, and its connection is destroyed, not reused;
 * - a result past maxRows / maxResultBytes fails with RESULT_TOO_LARGE and stops the transfer;
 * - a request past maxRequestBytes is refused in the calling thread, before it is sent;
 * - PostgreSQL: a statement that failed inside a transaction never hands its connection to the
 *   next user still in the failed transaction, even when the server's ErrorResponse and
 *   ReadyForQuery arrive in separate reads (through the proxy's 1-byte slicer);
 * - the proxy's toxics: RST, cut in the middle of a result, 1-byte slicer, latency, down.
 */
import { randomUUID } from 'node:crypto';
import net from 'node:net';
import { threadId } from 'node:worker_threads';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Broker, BrokerError } from 'threadbroker';
import { DriverSpy } from '../helpers/driver-spy.js';
import { record } from '../helpers/figures.js';
import { codeOf, relConfig, relUrl, rowsSql, serverOf, sessionIdSql, sleepSql } from '../helpers/reliability.js';
import { Admin, waitFor } from '../helpers/server-admin.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';
import { BROKER_USER, KINDS, ph } from '../helpers/test-setup.js';

const TABLE = `rel_cou_${BROKER_USER}`;

/** Sockets of this process still open towards `port`. */
function openSocketsTo(port: number): number {
  const handles = (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles();
  return handles.filter((h) => h instanceof net.Socket && h.remotePort === port && !h.destroyed).length;
}
const COMMANDER = new URL('../fixtures/workers/core-commander.mjs', import.meta.url);

for (const kind of KINDS) {
  describe(`${kind}: reliability subset (faults through the proxy, limits)`, () => {
    let admin: Admin;
    let proxy: TcpProxy;
    let broker: Broker | undefined;
    const p = (i: number): string => ph(kind, i);

    beforeAll(async () => {
      admin = new Admin(kind);
      await admin.exec(`drop table if exists ${TABLE}`, `create table ${TABLE} (op_id varchar(36) primary key)`);
      if (kind === 'pg') await admin.exec(`grant all on ${TABLE} to ${BROKER_USER}`);
      proxy = await TcpProxy.start(serverOf(kind));
    });

    afterEach(async () => {
      proxy.clear();
      await broker?.close();
      broker = undefined;
      await waitFor('no broker sessions left', async () => (await admin.sessions()) === 0, 10_000);
    });

    afterAll(async () => {
      await proxy.close();
      await admin.exec(`drop table if exists ${TABLE}`);
      await admin.close();
    });

    const viaProxy = (db: Record<string, unknown> = {}): Record<string, unknown> => relConfig(kind, { url: relUrl(kind, proxy.port), max: 2, ...db });

    it('a connection lost during COMMIT answers COMMIT_OUTCOME_UNKNOWN; the outcome is settled by the transaction id or the op id (F2)', async () => {
      broker = await Broker.start(viaProxy());
      const db = broker.connect();
      const outcomes: string[] = [];
      for (const mode of ['after-reply', 'before'] as const) {
        const r = await db.reserve('db');
        await r.begin();
        const opId = randomUUID();
        await r.query(`insert into ${TABLE} (op_id) values (${p(1)})`, [opId]);
        const sid = Number((await r.query<{ sid: unknown }>(sessionIdSql(kind))).rows[0].sid);
        // The cut lands exactly on COMMIT: the server runs it and its reply is lost, or it never arrives.
        proxy.cutOn({ match: 'COMMIT', mode });
        const err = await r.commit().then(() => undefined, (e: unknown) => e as BrokerError);
        expect(err).toBeInstanceOf(BrokerError);
        expect(err!.code).toBe('COMMIT_OUTCOME_UNKNOWN');
        // The session is gone on the server once it noticed; only then is the outcome final.
        await waitFor('the cut session to end on the server', async () => !(await admin.sessionIds()).includes(sid));
        const present = await admin.scalar(`select count(*) as n from ${TABLE} where op_id = ${p(1)}`, [opId]);
        expect(present).toBe(mode === 'after-reply' ? 1 : 0);
        if (kind === 'pg') {
          expect(err!.xid).toMatch(/^\d+$/);
          const status = String((await admin.rows('select txid_status($1::bigint) as s', [err!.xid]))[0].s);
          expect(status).toBe(mode === 'after-reply' ? 'committed' : 'aborted');
          outcomes.push(`${mode}: ${status}`);
        } else {
          expect(err!.xid).toBeUndefined();
          outcomes.push(`${mode}: ${present === 1 ? 'committed' : 'aborted'} (op id)`);
        }
        // The reservation's connection is gone: every later use says so at once.
        expect(await codeOf(r.query('select 1'))).toBe('TX_CONNECTION_LOST');
        await r.release();
      }
      expect(broker.stats().databases.db.reserved).toBe(0);
      // A commit that answers is still a plain commit.
      const r = await db.reserve('db');
      await r.begin();
      await r.query(`insert into ${TABLE} (op_id) values (${p(1)})`, [randomUUID()]);
      await r.commit();
      await r.release();
      console.log(`[reliability] ${kind}: COMMIT cut ${outcomes.join(', ')}`);
    });

    it('a statement on a black-holed connection ends at queryTimeoutMillis with QUERY_TIMEOUT; the connection is destroyed (F6)', async () => {
      const T = 400;
      broker = await Broker.start(viaProxy({ queryTimeoutMillis: T, connectTimeoutMillis: 300, acquireTimeoutMillis: 600 }));
      const db = broker.connect();
      const before = Number((await db.query<{ sid: unknown }>('db', sessionIdSql(kind))).rows[0].sid);
      proxy.blackhole(true);
      const t0 = performance.now();
      const code = await codeOf(db.query('db', 'select 1'));
      const took = performance.now() - t0;
      expect(code).toBe('QUERY_TIMEOUT');
      expect(took).toBeGreaterThanOrEqual(T - 1);
      expect(took).toBeLessThan(T + 150);
      // Destroyed means closed here and now: no socket of this process to the proxy is left open
      // (mysql2's destroy() only sent a FIN, and the socket stayed open while the peer was silent).
      await waitFor('the timed-out socket closed', () => openSocketsTo(proxy.port) === 0, 1_000);
      // New connections cannot be made either: a bounded ACQUIRE_TIMEOUT, never a hang.
      expect(await codeOf(db.query('db', 'select 1'))).toBe('ACQUIRE_TIMEOUT');
      proxy.blackhole(false);
      // The timed-out connection was closed by the broker, never handed out again.
      await waitFor('service back after the black hole', async () => (await codeOf(db.query('db', 'select 1'))) === 'OK', 5_000);
      const after = Number((await db.query<{ sid: unknown }>('db', sessionIdSql(kind))).rows[0].sid);
      expect(after).not.toBe(before);
      await waitFor('the old session to end on the server', async () => !(await admin.sessionIds()).includes(before));
    });

    it('a result past maxRows or maxResultBytes fails with RESULT_TOO_LARGE; the pool and reservations go on (S6)', async () => {
      broker = await Broker.start(relConfig(kind, { max: 2, maxRows: 100, maxResultBytes: 64 * 1024 }));
      const db = broker.connect();
      expect((await db.query('db', rowsSql(kind, 100))).rows).toHaveLength(100);
      expect(await codeOf(db.query('db', rowsSql(kind, 101)))).toBe('RESULT_TOO_LARGE');
      expect(await codeOf(db.query('db', rowsSql(kind, 90, 2000)))).toBe('RESULT_TOO_LARGE');
      expect((await db.query('db', 'select 1 as one')).rows).toEqual([{ one: 1 }]);
      // In a reservation the statement says RESULT_TOO_LARGE; its connection was closed to stop the transfer.
      const r = await db.reserve('db');
      await r.begin();
      expect(await codeOf(r.query(rowsSql(kind, 500)))).toBe('RESULT_TOO_LARGE');
      expect(await codeOf(r.query('select 1'))).toBe('TX_CONNECTION_LOST');
      await r.release();
      expect(broker.stats().databases.db).toMatchObject({ reserved: 0, busy: 0, waiting: 0 });
    });

    it('a request past maxRequestBytes is refused in the calling thread, and by the broker for a raw port (S6)', async () => {
      broker = await Broker.start(relConfig(kind, { max: 2, maxRequestBytes: 1024 * 1024 }));
      const spy = new DriverSpy();
      try {
        const db = broker.connect();
        const big = 'x'.repeat(2 * 1024 * 1024);
        const sql = `select ${p(1)} as v`;
        expect(await codeOf(db.query('db', sql, [big]))).toBe('REQUEST_TOO_LARGE');
        // From a worker thread.
        const w = broker.worker(COMMANDER);
        const reply = await new Promise<{ error?: { code?: string } }>((resolve) => {
          w.on('message', (m: { tag?: string; sent?: boolean; error?: { code?: string } }) => {
            if (m.tag === 'big' && !m.sent) resolve(m);
          });
          w.postMessage({ op: 'query', tag: 'big', sql, params: [big] });
        });
        expect(reply.error?.code).toBe('REQUEST_TOO_LARGE');
        await w.terminate();
        // A thread that bypasses the client: the broker refuses it too.
        const port = broker.port();
        const answer = await new Promise<{ e?: { code: string } }>((resolve) => {
          port.on('message', (m: { t?: string; id?: number; e?: { code: string } }) => {
            if (m.t === 'ready') port.postMessage({ t: 'q', id: 1, db: 'db', sql, params: [big] });
            else if (m.id === 1) resolve(m);
          });
          port.postMessage({ t: 'hello', v: 1, thread: threadId });
        });
        port.close();
        expect(answer.e?.code).toBe('REQUEST_TOO_LARGE');
        expect(spy.statements.filter((s) => s.sql === sql)).toEqual([]);
        // Within the limit it runs.
        expect((await db.query<{ v: string }>('db', sql, ['x'.repeat(1000)])).rows[0].v).toHaveLength(1000);
      } finally {
        spy.restore();
      }
    });

    it('a holder asking while an expired lease is still being reclaimed waits for that slot, not POOL_DEADLOCK (F8)', async () => {
      broker = await Broker.start(relConfig(kind, { max: 3 }, { housekeepingMillis: 20 }));
      const db = broker.connect();
      const a = await db.reserve('db');
      await a.query('select 1');
      const b = await db.reserve('db', { maxLifetimeMillis: 150 });
      const token = b.token;
      // b's statement outlives b's lease: b is retired at once, its slot frees when the statement ends.
      const slow = codeOf(b.query(sleepSql(kind, 0.8)));
      await waitFor('b retired', async () => (await codeOf(db.attach(token))) === 'TOKEN_EXPIRED', 2_000);
      const t0 = performance.now();
      const c = await db.reserve('db', { waitMillis: 5_000 });
      expect(performance.now() - t0).toBeGreaterThan(200);
      expect(await slow).toBe('OK');
      await c.query('select 1');
      await c.release();
      await a.release();
      expect(broker.stats().databases.db.reserved).toBe(0);
    });

    if (kind === 'pg') {
      it('a failed statement never hands its connection on in the failed transaction, whatever the reads (ErrorResponse and ReadyForQuery apart)', async () => {
        broker = await Broker.start(viaProxy({ max: 1 }));
        const db = broker.connect();
        proxy.slicer(1);
        for (let i = 0; i < 3; i++) {
          expect(await codeOf(db.query('db', 'BEGIN; select 1/0'))).toBe('DATABASE_ERROR');
          const r = (await db.query<{ xid: unknown; fresh: boolean }>('db', 'select txid_current_if_assigned() as xid, now() = statement_timestamp() as fresh')).rows[0];
          expect(r).toEqual({ xid: null, fresh: true });
        }
      });
    }

    it('toxics: RST fails in-flight work at once; a cut mid-result is an error, never a short result; 1-byte slices give identical results; service returns after down', async () => {
      broker = await Broker.start(viaProxy({ max: 2, acquireTimeoutMillis: 2_000, connectTimeoutMillis: 1_000 }));
      const db = broker.connect();
      const sql = rowsSql(kind, 1000, 20);
      const direct = (await db.query('db', sql)).rows;
      // RST with a statement in flight.
      const inflight = codeOf(db.query('db', kind === 'pg' ? 'select pg_sleep(5)' : 'select sleep(5)'));
      await waitFor('the statement on the server', async () => (await admin.sessionIds({ like: '%sleep(5)%' })).length === 1);
      const t0 = performance.now();
      expect(proxy.resetAll()).toBeGreaterThan(0);
      expect(await inflight).toBe('CONNECTION_LOST');
      const rstMillis = performance.now() - t0;
      expect(rstMillis).toBeLessThan(500);
      // Cut after N bytes of a result, at several points: always an error.
      let truncatedAsSuccess = 0;
      for (const n of [50, 300, 2_000, 9_000, 20_000]) {
        await waitFor('service', async () => (await codeOf(db.query('db', 'select 1'))) === 'OK', 5_000);
        proxy.limitData(n);
        const r = await db.query('db', sql).then((x) => x.rows.length, (e: BrokerError) => e.code);
        if (r !== 1000 && typeof r === 'number') truncatedAsSuccess++;
        expect(['CONNECTION_LOST', 1000]).toContain(r);
        proxy.limitData(-1);
        for (const c of proxy.connections()) c.end();
      }
      expect(truncatedAsSuccess).toBe(0);
      // 1-byte slices: the same rows.
      await waitFor('service', async () => (await codeOf(db.query('db', 'select 1'))) === 'OK', 5_000);
      proxy.slicer(1);
      expect((await db.query('db', sql)).rows).toEqual(direct);
      proxy.slicer(0);
      // Down: refused at once, bounded; back when up.
      await proxy.down();
      const downCode = await codeOf(db.query('db', 'select 1'));
      expect(['CONNECTION_LOST', 'ACQUIRE_TIMEOUT']).toContain(downCode);
      await proxy.up();
      await waitFor('service back after down', async () => (await codeOf(db.query('db', 'select 1'))) === 'OK', 5_000);
      record('F6-subset', kind, { rstMillis: Math.round(rstMillis), truncatedAsSuccess });
    });
  });
}
