/**
 * RELIABILITY.md L2, saturation with a bounded queue: cap 4, 64 concurrent 1 s queries,
 * acquireTimeoutMillis 500, queueLimit 32. Requests past the queue fail at once with QUEUE_FULL;
 * those that wait fail with ACQUIRE_TIMEOUT within [T, T + 50 ms], never earlier; once the burst
 * ends everything succeeds; a timed-out request never leaves a connection behind (pg #3543).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Broker, BrokerError } from 'threadbroker';
import { record } from '../helpers/figures.js';
import { CapSampler, endState, relConfig, sleepSql } from '../helpers/reliability.js';
import { Admin, waitFor } from '../helpers/server-admin.js';
import { KINDS } from '../helpers/test-setup.js';

const CAP = 4;
const BURST = 64;
const T = 500;
const QUEUE = 32;

for (const kind of KINDS) {
  describe(`${kind}: L2 saturation with a bounded queue`, () => {
    let admin: Admin;

    beforeAll(async () => {
      admin = new Admin(kind);
      await waitFor('no broker sessions left', async () => (await admin.sessions()) === 0, 15_000);
      await admin.capLogin(CAP);
    });

    afterAll(async () => {
      await admin.capLogin(kind === 'pg' ? -1 : 0);
      await admin.close();
    });

    it(`cap ${CAP}, ${BURST} concurrent 1 s queries, acquire ${T} ms, queue ${QUEUE}`, async () => {
      const sampler = new CapSampler(kind);
      sampler.start(5);
      const broker = await Broker.start(relConfig(kind, { max: CAP, acquireTimeoutMillis: T, queueLimit: QUEUE }));
      const db = broker.connect();
      try {
        // Connections open first, so the burst meets a warm, full pool.
        await Promise.all(Array.from({ length: CAP }, () => db.query('db', 'select 1')));
        let maxOpen = 0;
        const probe = setInterval(() => {
          maxOpen = Math.max(maxOpen, broker.stats().databases.db.open);
        }, 1);
        const t0 = performance.now();
        const results = await Promise.all(Array.from({ length: BURST }, () => {
          const start = performance.now();
          return db.query('db', sleepSql(kind, 1)).then(
            () => ({ code: 'OK', took: performance.now() - start }),
            (e: BrokerError) => ({ code: e.code, took: performance.now() - start }),
          );
        }));
        const burstMillis = performance.now() - t0;
        clearInterval(probe);
        const by = (c: string) => results.filter((r) => r.code === c);
        const timeouts = by('ACQUIRE_TIMEOUT').map((r) => r.took);
        const full = by('QUEUE_FULL').map((r) => r.took);
        // Recovery: the first request after the burst, then 100 in a row, all succeed.
        const r0 = performance.now();
        await db.query('db', 'select 1');
        const recovery = performance.now() - r0;
        let after = 0;
        for (let i = 0; i < 100; i++) after += (await db.query('db', 'select 1')).rowCount;
        const end = await endState(broker, admin);
        const serverNow = await admin.sessions();
        await sampler.stop();
        const figures = {
          cap: CAP, burst: BURST, ok: by('OK').length, queueFull: full.length, acquireTimeout: timeouts.length,
          queueFullMaxMillis: Math.round(Math.max(...full)),
          timeoutMinMillis: Math.round(Math.min(...timeouts) * 10) / 10,
          maxOvershootMillis: Math.round((Math.max(...timeouts) - T) * 10) / 10,
          recoveryMillis: Math.round(recovery * 10) / 10,
          after100: after, burstMillis: Math.round(burstMillis),
          maxOpen, peakServer: sampler.max, serverAfter: serverNow, leakedAfterTimeouts: Math.max(0, serverNow - CAP), end,
        };
        record('L2', kind, figures);
        console.log(`[L2] ${kind}: ${JSON.stringify(figures)}`);
        expect(by('OK')).toHaveLength(CAP);
        expect(full).toHaveLength(BURST - CAP - QUEUE);
        expect(timeouts).toHaveLength(QUEUE);
        expect(Math.max(...full)).toBeLessThan(50);
        expect(Math.min(...timeouts)).toBeGreaterThanOrEqual(T);
        expect(Math.max(...timeouts)).toBeLessThanOrEqual(T + 50);
        expect(after).toBe(100);
        expect(maxOpen).toBeLessThanOrEqual(CAP);
        expect(sampler.max).toBeLessThanOrEqual(CAP);
        expect(serverNow).toBeLessThanOrEqual(CAP);
        expect(end).toEqual({ idleInTx: 0, reserved: 0, busy: 0, waiting: 0 });
      } finally {
        await broker.close();
      }
    });
  });
}
