/**
 * RELIABILITY.md L3, spike demand: the pool is idle (no connection open), 50 requests arrive at
 * once, the proxy adds 150 ms to every connect and queries take 2 ms. Connections created stay
 * within the cap, all 50 finish, and the pool's state is sampled every 1 ms.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Broker } from 'threadbroker';
import { record } from '../helpers/figures.js';
import { relConfig, relUrl, serverOf, sleepSql } from '../helpers/reliability.js';
import { Admin, waitFor } from '../helpers/server-admin.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';
import { KINDS } from '../helpers/test-setup.js';

const CAP = 8;
const REQUESTS = 50;

for (const kind of KINDS) {
  describe(`${kind}: L3 spike demand`, () => {
    let admin: Admin;
    let proxy: TcpProxy;

    beforeAll(async () => {
      admin = new Admin(kind);
      proxy = await TcpProxy.start(serverOf(kind));
      await waitFor('no broker sessions left', async () => (await admin.sessions()) === 0, 15_000);
    });

    afterAll(async () => {
      await proxy.close();
      await admin.close();
    });

    it(`${REQUESTS} requests at once on an idle pool, 150 ms connects, 2 ms queries, cap ${CAP}`, async () => {
      const broker = await Broker.start(relConfig(kind, { url: relUrl(kind, proxy.port), max: CAP, acquireTimeoutMillis: 10_000 }));
      try {
        const db = broker.connect();
        proxy.connectLatency(150);
        proxy.resetCounters();
        const samples: { open: number; waiting: number; busy: number }[] = [];
        const probe = setInterval(() => {
          const s = broker.stats().databases.db;
          samples.push({ open: s.open, waiting: s.waiting, busy: s.busy });
        }, 1);
        const t0 = performance.now();
        const done = await Promise.all(Array.from({ length: REQUESTS }, () => db.query('db', sleepSql(kind, 0.002)).then(() => performance.now() - t0)));
        const drain = performance.now() - t0;
        clearInterval(probe);
        const figures = {
          requests: REQUESTS, cap: CAP, finished: done.length,
          connectionsOpened: proxy.accepted,
          drainMillis: Math.round(drain),
          firstDoneMillis: Math.round(Math.min(...done)),
          maxOpen: Math.max(...samples.map((s) => s.open)),
          maxWaiting: Math.max(...samples.map((s) => s.waiting)),
          samples: samples.length,
        };
        record('L3', kind, figures);
        console.log(`[L3] ${kind}: ${JSON.stringify(figures)}`);
        expect(done).toHaveLength(REQUESTS);
        expect(proxy.accepted).toBeLessThanOrEqual(CAP);
        expect(figures.maxOpen).toBeLessThanOrEqual(CAP);
        // One connect wave (150 ms) and 50 short queries over at most 8 connections.
        expect(drain).toBeLessThan(3_000);
        expect(broker.stats().databases.db).toMatchObject({ busy: 0, waiting: 0 });
      } finally {
        proxy.clear();
        await broker.close();
      }
    });
  });
}
