/**
 * RELIABILITY.md F7, a worker dies holding a reservation, 50 times per driver, four ways:
 * `worker.terminate()`, `process.exit(1)` in the worker, an uncaught throw, and out of memory
 * under `resourceLimits`. Each holds an unexported token with an open transaction that wrote a
 * ledger row, a statement in flight and another queued. The broker sees the exit, rejects the
 * dead thread's requests, rolls the transaction back and frees the slot; no idle-in-transaction
 * session remains; another worker keeps its throughput. A token that was read (handed over)
 * survives its thread and lives by its lease (F8).
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Broker } from 'threadbroker';
import { Agent } from '../helpers/agent.js';
import { record } from '../helpers/figures.js';
import { Ledger } from '../helpers/ledger.js';
import { ErrorWatch, endState, relConfig, sleepSql, startLoad } from '../helpers/reliability.js';
import { Admin, sleep, waitFor } from '../helpers/server-admin.js';
import { KINDS, ph } from '../helpers/test-setup.js';

const DEATHS = 52;
const BATCH = 4;
const WAYS = ['terminate', 'exit', 'throw', 'oom'] as const;
type Way = (typeof WAYS)[number];

for (const kind of KINDS) {
  describe(`${kind}: F7 worker deaths while holding a reservation`, () => {
    let admin: Admin;
    let ledger: Ledger;

    beforeAll(async () => {
      admin = new Admin(kind);
      ledger = new Ledger(kind, admin, 'f7', 4);
      await ledger.create(1000);
      await waitFor('no broker sessions left', async () => (await admin.sessions()) === 0, 15_000);
    });

    afterAll(async () => {
      await ledger.drop();
      await admin.close();
    });

    it(`${DEATHS} deaths (${WAYS.join(', ')}), each with an open transaction, a statement in flight and one queued`, async () => {
      const watch = new ErrorWatch();
      const broker = await Broker.start(relConfig(kind, { max: 8, acquireTimeoutMillis: 10_000 }));
      const t = ledger.tables();
      const insert = `insert into ${t.ledger} (op_id, worker, kind, amount, note) values (${ph(kind, 1)}, 99, 'insert', 1, '')`;
      // Another worker's plain traffic: its rate before and during the deaths.
      const load = startLoad(broker, 1, { kind, ops: 1_000_000, tables: t, mix: { select: 0.5, insert: 0.5 }, opDeadlineMillis: 10_000 });
      const rate = async (millis: number): Promise<number> => {
        const a = await admin.scalar(`select count(*) as n from ${t.ledger} where worker = 0`);
        await sleep(millis);
        const b = await admin.scalar(`select count(*) as n from ${t.ledger} where worker = 0`);
        return ((b - a) * 1000) / millis;
      };
      await waitFor('the other worker at work', async () => (await admin.scalar(`select count(*) as n from ${t.ledger} where worker = 0`)) > 20);
      const baseline = await rate(1_000);
      const dead: string[] = [];
      const detectToRollback: number[] = [];
      const byWay: Record<string, number> = {};
      let orphanedTx = 0;
      let deathsDone = 0;
      const d0 = Date.now();
      const atStart = await admin.scalar(`select count(*) as n from ${t.ledger} where worker = 0`);
      try {
        while (deathsDone < DEATHS) {
          const batch = Array.from({ length: Math.min(BATCH, DEATHS - deathsDone) }, (_, i) => WAYS[(deathsDone + i) % WAYS.length]);
          const agents = batch.map((way: Way) => ({ way, agent: Agent.spawn(broker, way === 'oom' ? { maxOldGenerationSizeMb: 24, maxYoungGenerationSizeMb: 8 } : undefined) }));
          for (const { agent } of agents) {
            await agent.ready;
            const opId = randomUUID();
            dead.push(opId);
            await agent.call('reserve', { key: 'r' });
            await agent.call('begin', { key: 'r' });
            await agent.call('query', { key: 'r', sql: insert, params: [opId] });
            // A statement in flight and one queued behind it: never answered.
            void agent.call('query', { key: 'r', sql: sleepSql(kind, 0.3) }).catch(() => undefined);
            void agent.call('query', { key: 'r', sql: insert, params: [randomUUID()] }).catch(() => undefined);
          }
          expect(broker.stats().databases.db.reserved).toBe(batch.length);
          const exits = agents.map(({ agent }) => new Promise<number>((r) => agent.worker!.once('exit', () => r(performance.now()))));
          for (const { way, agent } of agents) {
            if (way === 'terminate') void agent.worker!.terminate();
            else void agent.call('die', { how: way }).catch(() => undefined);
            byWay[way] = (byWay[way] ?? 0) + 1;
          }
          const exitedAt = await Promise.all(exits);
          await waitFor('the dead threads\' slots freed', () => broker.stats().databases.db.reserved === 0, 5_000, 1);
          const freedAt = performance.now();
          await waitFor('no idle-in-transaction session', async () => (await admin.idleInTransaction()) === 0, 5_000, 5)
            .catch(() => void orphanedTx++);
          const rolledBackAt = performance.now();
          for (const at of exitedAt) detectToRollback.push(Math.max(freedAt, rolledBackAt) - at);
          deathsDone += batch.length;
        }
        const during = (((await admin.scalar(`select count(*) as n from ${t.ledger} where worker = 0`)) - atStart) * 1000) / Math.max(1, Date.now() - d0);
        // A handed-over token outlives its thread, for whoever holds it.
        const handed = Agent.spawn(broker);
        await handed.ready;
        await handed.call('reserve', { key: 'r' });
        await handed.call('begin', { key: 'r' });
        const handedOp = randomUUID();
        await handed.call('query', { key: 'r', sql: insert, params: [handedOp] });
        const token = await handed.call<string>('token', { key: 'r' });
        await handed.worker!.terminate();
        await sleep(200);
        expect(broker.stats().databases.db.reserved).toBe(1);
        const db = broker.connect();
        const r = await db.attach(token);
        await r.commit();
        await r.release();
        const present = new Set((await admin.rows(`select op_id from ${t.ledger} where worker = 99`)).map((x) => String(x.op_id)));
        const visible = dead.filter((id) => present.has(id)).length;
        load.stop();
        const [summary] = await load.done;
        const end = await endState(broker, admin);
        const unhandled = watch.stop();
        const figures = {
          deaths: deathsDone, byWay, orphanedTx, visibleWritesOfDead: visible,
          maxDetectToRollbackMillis: Math.round(Math.max(...detectToRollback)),
          hung: summary.hung + summary.stillPending, otherWorkerErrors: summary.errors,
          baselineOpsPerSec: Math.round(baseline), duringOpsPerSec: Math.round(during),
          handedOverSurvived: present.has(handedOp), end, unhandled: unhandled.length,
        };
        record('F7', kind, figures);
        console.log(`[F7] ${kind}: ${JSON.stringify(figures)}`);
        expect(visible).toBe(0);
        expect(orphanedTx).toBe(0);
        expect(Math.max(...detectToRollback)).toBeLessThan(2_000);
        expect(present.has(handedOp)).toBe(true);
        expect(summary.errors).toEqual({});
        expect(figures.hung).toBe(0);
        expect(during).toBeGreaterThan(baseline * 0.3);
        expect(end).toEqual({ idleInTx: 0, reserved: 0, busy: 0, waiting: 0 });
        expect(unhandled).toEqual([]);
      } finally {
        load.stop();
        await broker.close();
      }
    });
  });
}
