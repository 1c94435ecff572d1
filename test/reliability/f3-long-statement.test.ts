/**
 * RELIABILITY.md F3, a kill during a long statement: a pool query runs a 10 s sleep; its backend
 * is killed on the server, or its socket is reset under it (the proxy's RST, the wire-level
 * `stream.destroy`). The caller is rejected within 100 ms with a typed error, the connection is
 * destroyed, and a worker running plain queries meanwhile is not affected.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Broker, BrokerError } from 'threadbroker';
import { record } from '../helpers/figures.js';
import { relConfig, relUrl, serverOf, sleepSql, startLoad } from '../helpers/reliability.js';
import { Ledger } from '../helpers/ledger.js';
import { Admin, waitFor } from '../helpers/server-admin.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';
import { KINDS } from '../helpers/test-setup.js';

const EACH = 5;

for (const kind of KINDS) {
  describe(`${kind}: F3 kill during a long statement`, () => {
    let admin: Admin;
    let proxy: TcpProxy;
    let ledger: Ledger;

    beforeAll(async () => {
      admin = new Admin(kind);
      ledger = new Ledger(kind, admin, 'f3', 4);
      await ledger.create(1000);
      proxy = await TcpProxy.start(serverOf(kind));
      await waitFor('no broker sessions left', async () => (await admin.sessions()) === 0, 15_000);
    });

    afterAll(async () => {
      await proxy.close();
      await ledger.drop();
      await admin.close();
    });

    it(`${EACH} server kills and ${EACH} socket resets of a 10 s statement`, async () => {
      const broker = await Broker.start(relConfig(kind, { url: relUrl(kind, proxy.port), max: 4, acquireTimeoutMillis: 10_000 }));
      const db = broker.connect();
      // Another worker keeps working throughout.
      const load = startLoad(broker, 1, { kind, ops: 100_000, tables: ledger.tables(), mix: { insert: 0.5, select: 0.5 }, opDeadlineMillis: 10_000, paceMillis: 2 });
      const rejectMillis: number[] = [];
      const codes: string[] = [];
      const seen = new Set<number>();
      const written = async (): Promise<number> => admin.scalar(`select count(*) as n from ${ledger.tables().ledger}`);
      try {
        await waitFor('the other worker at work', async () => (await written()) >= 20);
        for (let i = 0; i < 2 * EACH; i++) {
          const how = i < EACH ? 'kill' : 'reset';
          const outcome = db.query('db', sleepSql(kind, 10)).then(() => 'OK', (e: BrokerError) => e.code);
          // A reset session sleeps on until its statement ends: look for the new one only.
          let ids: number[] = [];
          await waitFor('the long statement on the server', async () => (ids = (await admin.sessionIds({ like: '%sleep(10)%' })).filter((x) => !seen.has(x))).length === 1);
          seen.add(ids[0]);
          const before = proxy.connections().length;
          const t0 = performance.now();
          if (how === 'kill') {
            await admin.kill(ids);
          } else {
            // Only the socket of that statement: the other worker's connections stay up.
            const carrying = proxy.connections().filter((c) => c.lastUpstream.includes('sleep(10)'));
            expect(carrying).toHaveLength(1);
            carrying[0].reset();
          }
          const code = await outcome;
          rejectMillis.push(performance.now() - t0);
          codes.push(code);
          expect(code).toBe('CONNECTION_LOST');
          expect(before).toBeGreaterThan(0);
          if (how === 'kill') {
            // The connection is destroyed: its session is gone on the server.
            await waitFor('the killed session gone', async () => (await admin.sessionIds({ like: '%sleep(10)%' })).length === 0, 15_000);
          } else {
            // The server learns of a reset socket only when the sleep ends; the broker already dropped it.
            await waitFor('the reset connection dropped by the pool', () => broker.stats().databases.db.busy <= 1);
          }
        }
        // It kept working through the faults.
        const mark = await written();
        await waitFor('the other worker still at work', async () => (await written()) >= mark + 20);
      } finally {
        load.stop();
      }
      const [summary] = await load.done;
      await broker.close();
      const figures = {
        kills: EACH, resets: EACH, maxRejectMillis: Math.round(Math.max(...rejectMillis) * 10) / 10,
        otherWorkerOps: summary.ran, otherWorkerErrors: summary.errors, otherWorkerHung: summary.hung,
      };
      record('F3', kind, figures);
      console.log(`[F3] ${kind}: ${JSON.stringify(figures)}`);
      expect(Math.max(...rejectMillis)).toBeLessThan(100);
      expect(summary.hung).toBe(0);
      expect(summary.errors).toEqual({});
      expect(summary.ran).toBeGreaterThan(10);
    });
  });
}
