/**
 * RELIABILITY.md F1, idle connections killed: every idle backend of the broker login is
 * terminated on the server (`pg_terminate_backend`, `KILL CONNECTION`), round after round. No
 * crash; killed connections are evicted and never handed out again; the next 100 queries succeed
 * with at most one CONNECTION_LOST, on the very first; the pool refills within the cap.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Broker, BrokerError } from 'threadbroker';
import { record } from '../helpers/figures.js';
import { CapSampler, ErrorWatch, relConfig, sleepSql } from '../helpers/reliability.js';
import { Admin, waitFor } from '../helpers/server-admin.js';
import { KINDS, ph } from '../helpers/test-setup.js';

const CAP = 8;
const ROUNDS = 10;

for (const kind of KINDS) {
  describe(`${kind}: F1 idle connections killed`, () => {
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

    it(`${ROUNDS} rounds: kill all ${CAP} idle sessions, then 100 queries`, async () => {
      const watch = new ErrorWatch();
      const sampler = new CapSampler(kind);
      sampler.start(5);
      const broker = await Broker.start(relConfig(kind, { max: CAP, acquireTimeoutMillis: 5_000 }));
      const db = broker.connect();
      let kills = 0;
      const errorsPerRound: number[] = [];
      const notFirst: number[] = [];
      const refill: number[] = [];
      try {
        for (let round = 0; round < ROUNDS; round++) {
          // Fill the pool: CAP statements at once, each on its own connection.
          const f0 = performance.now();
          await Promise.all(Array.from({ length: CAP }, () => db.query('db', sleepSql(kind, 0.05))));
          if (round > 0) refill.push(performance.now() - f0);
          await waitFor('a full, idle pool', () => broker.stats().databases.db.idle === CAP);
          const ids = await admin.sessionIds({ idle: true });
          expect(ids).toHaveLength(CAP);
          await admin.kill(ids);
          kills += ids.length;
          await waitFor('killed sessions gone on the server', async () => (await admin.sessions()) === 0);
          let errors = 0;
          for (let i = 0; i < 100; i++) {
            try {
              const r = await db.query('db', `select ${ph(kind, 1)} as v`, [i]);
              expect(Number(r.rows[0].v)).toBe(i);
            } catch (err) {
              expect(err).toBeInstanceOf(BrokerError);
              expect((err as BrokerError).code).toBe('CONNECTION_LOST');
              errors++;
              if (i !== 0) notFirst.push(i);
            }
          }
          errorsPerRound.push(errors);
        }
      } finally {
        await broker.close();
        await sampler.stop();
      }
      const unhandled = watch.stop();
      const figures = {
        kills, rounds: ROUNDS, crashes: unhandled.length,
        maxErrorsPerRound: Math.max(...errorsPerRound), totalErrors: errorsPerRound.reduce((a, b) => a + b, 0),
        errorsNotOnFirstQuery: notFirst.length,
        refillMillisMax: Math.round(Math.max(...refill)), peakServer: sampler.max, cap: CAP,
      };
      record('F1', kind, figures);
      console.log(`[F1] ${kind}: ${JSON.stringify(figures)}`);
      expect(unhandled).toEqual([]);
      expect(Math.max(...errorsPerRound)).toBeLessThanOrEqual(1);
      expect(notFirst).toEqual([]);
      expect(sampler.max).toBeLessThanOrEqual(CAP);
    });
  });
}
