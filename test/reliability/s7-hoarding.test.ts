/**
 * RELIABILITY.md S7, reservation hoarding: one thread asks for cap + 10 reservations, binds each to
 * a connection and never uses them again, while 8 workers run plain queries. The hoarder gets at
 * most `maxReserved` = cap − 1 (the rest are refused at once or at their wait deadline), total
 * reservations never pass cap − 1, plain traffic keeps its latency, and the hoarded leases are
 * reclaimed at their idle TTL. There is no per-principal quota in the library (the cap − 1 bound
 * is global); the summary says so.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Broker } from 'threadbroker';
import { Agent } from '../helpers/agent.js';
import { percentile, record } from '../helpers/figures.js';
import { Ledger } from '../helpers/ledger.js';
import { relConfig, startLoad } from '../helpers/reliability.js';
import { Admin, sleep, waitFor } from '../helpers/server-admin.js';
import { KINDS } from '../helpers/test-setup.js';

const CAP = 8;
const TTL = 2_000;
const TICK = 50;

for (const kind of KINDS) {
  describe(`${kind}: S7 reservation hoarding`, () => {
    let admin: Admin;
    let ledger: Ledger;

    beforeAll(async () => {
      admin = new Admin(kind);
      ledger = new Ledger(kind, admin, 's7', 4);
      await ledger.create(1000);
      await waitFor('no broker sessions left', async () => (await admin.sessions()) === 0, 15_000);
    });

    afterAll(async () => {
      await ledger.drop();
      await admin.close();
    });

    it(`a hoarder asks for ${CAP + 10} reservations while 8 workers run plain queries`, async () => {
      const broker = await Broker.start(relConfig(kind, { max: CAP, acquireTimeoutMillis: 5_000 }, { housekeepingMillis: TICK, idleTimeoutMillis: TTL }));
      const plain = async (millis: number): Promise<number[]> => {
        const load = startLoad(broker, 8, { kind, ops: 100_000, tables: ledger.tables(), mix: { select: 0.7, insert: 0.3 }, opDeadlineMillis: 5_000, paceMillis: 1 });
        await sleep(millis);
        load.stop();
        const out = await load.done;
        return out.flatMap((s) => s.latencies);
      };
      try {
        const baseline = await plain(1_500);
        let maxReserved = 0;
        const probe = setInterval(() => {
          maxReserved = Math.max(maxReserved, broker.stats().databases.db.reserved);
        }, 2);
        const hoarder = Agent.spawn(broker);
        await hoarder.ready;
        let grabbedAt = 0;
        const [grab, underAttack] = await Promise.all([
          hoarder.call<{ granted: number; refused: Record<string, number> }>('reserveMany', { n: CAP + 10, bind: true, opts: { waitMillis: 200, idleTimeoutMillis: TTL } })
            .then((g) => {
              grabbedAt = Date.now();
              return g;
            }),
          plain(1_500),
        ]);
        await waitFor('the hoarded leases reclaimed', () => broker.stats().databases.db.reserved === 0, TTL + 3_000, 5);
        const reclaimMillis = Date.now() - grabbedAt;
        clearInterval(probe);
        await hoarder.worker?.terminate();
        const figures = {
          asked: CAP + 10, granted: grab.granted, refused: grab.refused, maxReservedSeen: maxReserved, limit: CAP - 1,
          plainP99BaselineMillis: percentile(baseline, 99), plainP99UnderAttackMillis: percentile(underAttack, 99),
          plainOpsBaseline: baseline.length, plainOpsUnderAttack: underAttack.length, reclaimAfterMillis: reclaimMillis, ttlMillis: TTL,
          perPrincipalQuota: 'none (global cap - 1)',
        };
        record('S7', kind, figures);
        console.log(`[S7] ${kind}: ${JSON.stringify(figures)}`);
        expect(grab.granted).toBeLessThanOrEqual(CAP - 1);
        expect(grab.granted + Object.values(grab.refused).reduce((a, b) => a + b, 0)).toBe(CAP + 10);
        expect(maxReserved).toBeLessThanOrEqual(CAP - 1);
        expect(underAttack.length).toBeGreaterThan(100);
        // One connection stays for plain traffic: its p99 stays within a small multiple of the baseline.
        expect(percentile(underAttack, 99)).toBeLessThan(Math.max(250, 10 * percentile(baseline, 99)));
        // Reclaimed at the TTL (counted from the last refusal, at most 200 ms after the last use), within a tick.
        expect(reclaimMillis).toBeGreaterThan(TTL - 300);
        expect(reclaimMillis).toBeLessThan(TTL + TICK + 200);
      } finally {
        await broker.close();
      }
    });
  });
}
