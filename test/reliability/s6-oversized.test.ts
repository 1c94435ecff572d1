/**
 * RELIABILITY.md S6, oversized results and messages: a 10⁶-row, ~200 MB SELECT fails with
 * RESULT_TOO_LARGE above maxResultBytes / maxRows before the main thread's memory grows (RSS sampled
 * every 5 ms), and the pool goes on; a worker that posts a 50 MB parameter array is refused in its
 * own thread (REQUEST_TOO_LARGE) before anything crosses to the main thread. A worker that runs out
 * of memory is handled as in F7 (f7-worker-death.test.ts, the `oom` deaths).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Broker, BrokerError } from 'threadbroker';
import { record } from '../helpers/figures.js';
import { relConfig, rowsSql } from '../helpers/reliability.js';
import { Admin, sleep, waitFor } from '../helpers/server-admin.js';
import { KINDS, ph } from '../helpers/test-setup.js';

const BIG_REQUEST = new URL('../fixtures/workers/rel-big-request.mjs', import.meta.url);
const MiB = 1024 * 1024;

/** Samples the main thread's RSS every 5 ms while `run` runs; returns the peak rise over the start. */
async function rssRise<T>(run: () => Promise<T>): Promise<{ value: T; riseMb: number }> {
  const start = process.memoryUsage.rss();
  let peak = start;
  const probe = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage.rss());
  }, 5);
  try {
    const value = await run();
    peak = Math.max(peak, process.memoryUsage.rss());
    return { value, riseMb: Math.round(((peak - start) / MiB) * 10) / 10 };
  } finally {
    clearInterval(probe);
  }
}

for (const kind of KINDS) {
  describe(`${kind}: S6 oversized results and messages`, () => {
    let admin: Admin;

    beforeAll(async () => {
      admin = new Admin(kind);
      await waitFor('no broker sessions left', async () => (await admin.sessions()) === 0, 15_000);
    });

    afterAll(async () => {
      await admin.close();
    });

    it('a 10⁶-row, ~200 MB result fails with RESULT_TOO_LARGE before the main thread grows; a 50 MB request is refused in its thread', async () => {
      const broker = await Broker.start(relConfig(kind, { max: 2, maxRows: 500_000, maxResultBytes: 16 * MiB, maxRequestBytes: 16 * MiB }));
      try {
        const db = broker.connect();
        await db.query('db', 'select 1');
        await sleep(100);
        // Bytes first: 10⁶ rows of ~200 bytes.
        const bytes = await rssRise(async () => {
          const t0 = performance.now();
          const code = await db.query('db', rowsSql(kind, 1_000_000, 200)).then(() => 'OK', (e: BrokerError) => e.code);
          return { code, millis: performance.now() - t0 };
        });
        // Rows next: the row limit stops a result of small rows.
        const rows = await rssRise(async () => {
          const t0 = performance.now();
          const code = await db.query('db', rowsSql(kind, 1_000_000, 1)).then(() => 'OK', (e: BrokerError) => e.code);
          return { code, millis: performance.now() - t0 };
        });
        // The pool goes on.
        expect((await db.query('db', rowsSql(kind, 1000, 10))).rows).toHaveLength(1000);
        // A worker posts 50 MB of parameters.
        const request = await rssRise(async () => {
          const w = broker.worker(BIG_REQUEST, { workerData: { mb: 50, sql: `select ${ph(kind, 1)} as v` } });
          return new Promise<{ code: string; millis: number }>((resolve, reject) => {
            w.once('message', resolve);
            w.once('error', reject);
          });
        });
        const figures = {
          resultBytesCode: bytes.value.code, resultBytesRejectMillis: Math.round(bytes.value.millis), resultBytesRssRiseMb: bytes.riseMb,
          resultRowsCode: rows.value.code, resultRowsRejectMillis: Math.round(rows.value.millis), resultRowsRssRiseMb: rows.riseMb,
          requestCode: request.value.code, requestRejectMillis: Math.round(request.value.millis * 10) / 10, requestMainRssRiseMb: request.riseMb,
          maxResultBytes: 16 * MiB, maxRows: 500_000,
        };
        record('S6', kind, figures);
        console.log(`[S6] ${kind}: ${JSON.stringify(figures)}`);
        expect(bytes.value.code).toBe('RESULT_TOO_LARGE');
        expect(rows.value.code).toBe('RESULT_TOO_LARGE');
        expect(request.value.code).toBe('REQUEST_TOO_LARGE');
        // ~200 MB asked for; the main thread holds at most the limit's worth of rows while it decides.
        expect(bytes.riseMb).toBeLessThan(150);
        expect(request.riseMb).toBeLessThan(40);
        expect(bytes.value.millis).toBeLessThan(10_000);
        expect(broker.stats().databases.db).toMatchObject({ busy: 0, waiting: 0 });
      } finally {
        await broker.close();
      }
    });
  });
}
