/**
 * RELIABILITY.md F4, database restarts under load (L1's mix, 8 workers): PostgreSQL
 * `pg_ctlcluster … restart -m fast` ×3 and `-m immediate` ×2; MariaDB `mysqladmin shutdown` then
 * start, ×2 (slower). In-flight requests fail with typed errors within their deadline, nothing
 * hangs past acquire + statement deadline, every worker succeeds again within R s of the restart,
 * the cap (server-side too) and the ledger hold, no unhandled 'error' (pg #1324, #3083).
 * Runs last (it disturbs every other user of the servers); TB_REL_SKIP_RESTARTS=1 skips it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Broker } from 'threadbroker';
import { DriverSpy } from '../helpers/driver-spy.js';
import { record } from '../helpers/figures.js';
import { Ledger, mergeOutcomes } from '../helpers/ledger.js';
import { CapSampler, endState, ErrorWatch, L1_MIX, relConfig, startLoad } from '../helpers/reliability.js';
import { Admin, CAP_REFUSED, PgLog, restartServer, sleep, startServer, waitFor } from '../helpers/server-admin.js';
import { KINDS } from '../helpers/test-setup.js';

const CAP = 8;
const ACQUIRE = 10_000;
const STATEMENT = 10_000;
const SKIP = process.env.TB_REL_SKIP_RESTARTS === '1';

for (const kind of KINDS) {
  describe.skipIf(SKIP)(`${kind}: F4 database restarts under load`, () => {
    let admin: Admin;
    let ledger: Ledger;
    // MariaDB has one way: mysqladmin shutdown, then start (its label says so; the mode is pg's).
    const modes: ('fast' | 'immediate')[] = kind === 'pg' ? ['fast', 'fast', 'fast', 'immediate', 'immediate'] : ['fast', 'fast'];
    const label = (m: string): string => (kind === 'pg' ? `-m ${m}` : 'shutdown + start');

    beforeAll(async () => {
      admin = new Admin(kind);
      ledger = new Ledger(kind, admin, 'f4');
      await ledger.create();
      await waitFor('no broker sessions left', async () => (await admin.sessions()) === 0, 15_000);
      await admin.capLogin(CAP);
    });

    afterAll(async () => {
      await startServer(kind);
      await admin.capLogin(kind === 'pg' ? -1 : 0);
      await ledger.drop();
      await admin.close();
    });

    it(`${modes.length} restarts (${modes.map(label).join(', ')}) while 8 workers run the L1 mix`, async () => {
      const watch = new ErrorWatch();
      const spy = new DriverSpy();
      const log = await PgLog.mark();
      const sampler = new CapSampler(kind);
      sampler.start(5);
      const broker = await Broker.start(relConfig(kind, { max: CAP, acquireTimeoutMillis: ACQUIRE, queryTimeoutMillis: STATEMENT, connectTimeoutMillis: 3_000 }));
      const load = startLoad(broker, 8, { kind, ops: 1_000_000, tables: ledger.tables(), mix: L1_MIX, opDeadlineMillis: ACQUIRE + STATEMENT + 5_000, timeline: true, paceMillis: 2 });
      const windows: { mode: string; start: number; up: number }[] = [];
      try {
        await sleep(2_000);
        for (const mode of modes) {
          const start = Date.now();
          await restartServer(kind, mode);
          windows.push({ mode: label(mode), start, up: Date.now() });
          await sleep(3_000);
        }
      } finally {
        load.stop();
      }
      const summaries = await load.done;
      await sampler.stop();
      const end = await endState(broker, admin, 20_000);
      const report = await ledger.verify(mergeOutcomes(summaries.map((s) => s.outcomes)));
      await broker.close();
      spy.restore();
      const logged = kind === 'pg' ? await log.count(CAP_REFUSED) : 0;
      const unhandled = watch.stop();
      // Per restart: errors in its window, and how long after the server answered every worker had succeeded again.
      const perRestart = windows.map((w, i) => {
        const next = windows[i + 1]?.start ?? Infinity;
        let errors = 0;
        let recovery = 0;
        for (const s of summaries) {
          errors += s.events.filter(([t, ok]) => ok === 0 && t >= w.start && t < next).length;
          const firstOk = s.events.find(([t, ok]) => ok === 1 && t >= w.up);
          recovery = Math.max(recovery, firstOk === undefined ? Infinity : firstOk[0] - w.up);
        }
        return { mode: w.mode, downMillis: w.up - w.start, errors, recoveryMillis: recovery };
      });
      const errors: Record<string, number> = {};
      for (const s of summaries) for (const [c, n] of Object.entries(s.errors)) errors[c] = (errors[c] ?? 0) + n;
      const figures = {
        restarts: windows.length, perRestart, maxRecoveryMillis: Math.max(...perRestart.map((r) => r.recoveryMillis)),
        ops: summaries.reduce((n, s) => n + s.ran, 0), errors, hung: summaries.reduce((n, s) => n + s.hung + s.stillPending, 0),
        peakServer: sampler.max, cap: CAP, capRefusals: spy.capRefusals().length + logged,
        acked: report.acked, lost: report.lost.length, duplicated: report.duplicated, phantom: report.phantom.length,
        unknown: report.unknown, unknownCommitted: report.unknownCommitted, xidMismatch: report.xidMismatch.length, partial: report.partial,
        violations: summaries.reduce((n, s) => n + s.violations, 0), end, unhandled: unhandled.length,
      };
      record('F4', kind, figures);
      console.log(`[F4] ${kind}: ${JSON.stringify(figures)}`);
      expect(windows).toHaveLength(modes.length);
      // Every error is a typed one; nothing hangs.
      for (const code of Object.keys(errors)) expect(code).not.toMatch(/^NOT_A_BROKER_ERROR/);
      expect(figures.hung).toBe(0);
      expect(figures.maxRecoveryMillis).toBeLessThan(10_000);
      expect(sampler.max).toBeLessThanOrEqual(CAP);
      expect(figures.capRefusals).toBe(0);
      expect(report.lost).toEqual([]);
      expect(report.phantom).toEqual([]);
      expect(report.duplicated).toBe(0);
      expect(report.xidMismatch).toEqual([]);
      expect(report.partial).toBe(0);
      expect(report.sumAfter).toBe(report.sumBefore);
      expect(figures.violations).toBe(0);
      expect(end).toEqual({ idleInTx: 0, reserved: 0, busy: 0, waiting: 0 });
      expect(unhandled).toEqual([]);
    });
  });
}
