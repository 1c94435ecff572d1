/**
 * RELIABILITY.md L1, load at the cap: 16 workers × 2,000 ops per database — 70 % single CRUD
 * statements on the ledger, 20 % reserved transfer transactions of 3–5 statements, 10 % reads of
 * 1,000 rows — with `max: 8` and the same cap enforced by the server for the broker login.
 * Oracles: the cap (sampled every 5 ms, no 53300/1226 refusal seen by the driver or logged by
 * PostgreSQL, the pool never opened more than 8), the ledger (nothing lost, nothing duplicated,
 * no phantom), the bank invariant, read-your-writes, no hung op, and a clean end state.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Broker } from 'threadbroker';
import { DriverSpy } from '../helpers/driver-spy.js';
import { percentile, record } from '../helpers/figures.js';
import { Ledger, mergeOutcomes } from '../helpers/ledger.js';
import { CapSampler, endState, ErrorWatch, L1_MIX, relConfig, startLoad } from '../helpers/reliability.js';
import { Admin, CAP_REFUSED, PgLog, waitFor } from '../helpers/server-admin.js';
import { KINDS } from '../helpers/test-setup.js';

const WORKERS = Number(process.env.TB_REL_L1_WORKERS ?? 16);
const OPS = Number(process.env.TB_REL_L1_OPS ?? 2000);
const CAP = 8;

function createdTotal(metrics: string): number {
  const m = /^threadbroker_connections_created_total\{database="db"\} (\d+)$/m.exec(metrics);
  return m === null ? NaN : Number(m[1]);
}

for (const kind of KINDS) {
  describe(`${kind}: L1 load at the cap`, () => {
    let admin: Admin;
    let ledger: Ledger;

    beforeAll(async () => {
      admin = new Admin(kind);
      ledger = new Ledger(kind, admin, 'l1');
      await ledger.create();
      await waitFor('no broker sessions left by an earlier test', async () => (await admin.sessions()) === 0, 15_000);
      await admin.capLogin(CAP);
    });

    afterAll(async () => {
      await admin.capLogin(kind === 'pg' ? -1 : 0);
      await ledger.drop();
      await admin.close();
    });

    it(`${WORKERS} workers × ${OPS} ops (70 % CRUD, 20 % reserved transactions, 10 % 1,000-row reads) at cap ${CAP}`, async () => {
      const watch = new ErrorWatch();
      const spy = new DriverSpy();
      const log = await PgLog.mark();
      const sampler = new CapSampler(kind);
      sampler.start(5);
      const broker = await Broker.start(relConfig(kind, { max: CAP, acquireTimeoutMillis: 30_000, queryTimeoutMillis: 30_000 }));
      const t0 = performance.now();
      let summaries;
      try {
        summaries = await startLoad(broker, WORKERS, { kind, ops: OPS, tables: ledger.tables(), mix: L1_MIX, opDeadlineMillis: 60_000 }).done;
      } finally {
        await sampler.stop();
      }
      const elapsed = performance.now() - t0;
      const created = createdTotal(broker.metrics());
      const end = await endState(broker, admin);
      const outcomes = mergeOutcomes(summaries.map((s) => s.outcomes));
      const report = await ledger.verify(outcomes);
      const latencies = summaries.flatMap((s) => s.latencies);
      const errors: Record<string, number> = {};
      for (const s of summaries) for (const [c, n] of Object.entries(s.errors)) errors[c] = (errors[c] ?? 0) + n;
      await broker.close();
      spy.restore();
      const logged = kind === 'pg' ? await log.count(CAP_REFUSED) : 0;
      const unhandled = watch.stop();
      const figures = {
        workers: WORKERS,
        opsPerWorker: OPS,
        ops: summaries.reduce((n, s) => n + s.ran, 0),
        seconds: Math.round(elapsed / 100) / 10,
        cap: CAP,
        peakServer: sampler.max,
        samples: sampler.samples,
        created,
        capRefusals: spy.capRefusals().length + logged,
        acked: report.acked,
        lost: report.lost.length,
        duplicated: report.duplicated,
        phantom: report.phantom.length,
        unknown: report.unknown,
        partial: report.partial,
        sumHeld: report.sumAfter === report.sumBefore,
        violations: summaries.reduce((n, s) => n + s.violations, 0),
        hung: summaries.reduce((n, s) => n + s.hung + s.stillPending, 0),
        p50: percentile(latencies, 50),
        p99: percentile(latencies, 99),
        errors,
        end,
        unhandled: unhandled.length,
      };
      record('L1', kind, figures);
      console.log(`[L1] ${kind}: ${JSON.stringify(figures)}`);
      expect(figures.ops).toBe(WORKERS * OPS);
      expect(sampler.samples).toBeGreaterThan(10);
      expect(sampler.max).toBeLessThanOrEqual(CAP);
      expect(sampler.max).toBeGreaterThan(0);
      expect(created).toBeLessThanOrEqual(CAP);
      expect(figures.capRefusals).toBe(0);
      expect(report.lost).toEqual([]);
      expect(report.phantom).toEqual([]);
      expect(report.duplicated).toBe(0);
      expect(report.xidMismatch).toEqual([]);
      expect(report.partial).toBe(0);
      expect(report.sumAfter).toBe(report.sumBefore);
      expect(figures.violations).toBe(0);
      expect(figures.hung).toBe(0);
      // At the cap without faults nothing may fail.
      expect(errors).toEqual({});
      expect(end).toEqual({ idleInTx: 0, reserved: 0, busy: 0, waiting: 0 });
      expect(unhandled).toEqual([]);
    });
  });
}
