/**
 * RELIABILITY.md F5, the database down for 30 s (`pg_ctlcluster … stop`, `mysqladmin shutdown`),
 * then started again: every acquire fails with ACQUIRE_TIMEOUT in [T, T + ε] while it is down,
 * reconnects back off (the proxy in front counts the attempts), and service returns by itself
 * once the server is back, with no manual reset (regression for pg #2973). Runs last;
 * TB_REL_DOWN_SECONDS shortens the outage, TB_REL_SKIP_RESTARTS=1 skips it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Broker, BrokerError } from 'threadbroker';
import { record } from '../helpers/figures.js';
import { ErrorWatch, relConfig, relUrl, serverOf } from '../helpers/reliability.js';
import { Admin, startServer, stopServer, waitFor } from '../helpers/server-admin.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';
import { KINDS } from '../helpers/test-setup.js';

const DOWN = Number(process.env.TB_REL_DOWN_SECONDS ?? 30) * 1000;
const T = 1_000;
const SKIP = process.env.TB_REL_SKIP_RESTARTS === '1';

for (const kind of KINDS) {
  describe.skipIf(SKIP)(`${kind}: F5 database down`, () => {
    let admin: Admin;
    let proxy: TcpProxy;

    beforeAll(async () => {
      admin = new Admin(kind);
      proxy = await TcpProxy.start(serverOf(kind));
      await waitFor('no broker sessions left', async () => (await admin.sessions()) === 0, 15_000);
    });

    afterAll(async () => {
      await startServer(kind);
      await proxy.close();
      await admin.close();
    });

    it(`down for ${DOWN / 1000} s: bounded refusals, backed-off reconnects, service back by itself`, async () => {
      const watch = new ErrorWatch();
      const broker = await Broker.start(relConfig(kind, { url: relUrl(kind, proxy.port), max: 4, acquireTimeoutMillis: T, connectTimeoutMillis: 1_000 }));
      const db = broker.connect();
      try {
        await Promise.all(Array.from({ length: 4 }, () => db.query('db', 'select 1')));
        await stopServer(kind);
        const downAt = Date.now();
        proxy.resetCounters();
        const took: number[] = [];
        const codes: Record<string, number> = {};
        while (Date.now() - downAt < DOWN) {
          const t0 = performance.now();
          const code = await db.query('db', 'select 1').then(() => 'OK', (e: BrokerError) => e.code);
          took.push(performance.now() - t0);
          codes[code] = (codes[code] ?? 0) + 1;
        }
        const attempts = proxy.accepted;
        await startServer(kind);
        const upAt = Date.now();
        let firstOk = 0;
        await waitFor('service back by itself', async () => {
          const ok = await db.query('db', 'select 1').then(() => true, () => false);
          if (ok) firstOk = Date.now();
          return ok;
        }, 30_000, 10);
        const unhandled = watch.stop();
        const figures = {
          downSeconds: DOWN / 1000, acquiresWhileDown: took.length, codes,
          minMillis: Math.round(Math.min(...took)), maxOvershootMillis: Math.round(Math.max(...took) - T),
          connectAttemptsWhileDown: attempts, firstSuccessAfterUpSeconds: Math.round((firstOk - upAt) / 100) / 10, unhandled: unhandled.length,
        };
        record('F5', kind, figures);
        console.log(`[F5] ${kind}: ${JSON.stringify(figures)}`);
        expect(Object.keys(codes)).toEqual(['ACQUIRE_TIMEOUT']);
        expect(Math.min(...took)).toBeGreaterThanOrEqual(T);
        expect(Math.max(...took)).toBeLessThan(T + 100);
        // Backoff (25 ms doubling to 1 s): a few dozen attempts, not one per waiter per millisecond.
        expect(attempts).toBeLessThan(DOWN / 1000 * 3 + 20);
        expect(firstOk - upAt).toBeLessThan(5_000);
        expect(unhandled).toEqual([]);
      } finally {
        await startServer(kind);
        await broker.close();
      }
    });
  });
}
