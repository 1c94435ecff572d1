/**
 * RELIABILITY.md F8, lease expiry, idle and absolute, at test scale (lease tick 50 ms):
 * reservations with an open transaction sit idle past their 2 s idle lease, three rounds of 7;
 * meanwhile 7 others are kept busy past their 10 s maximum lifetime. Each is reclaimed within its
 * lease plus one tick (plus its rollback); its writes are rolled back; its token then gets
 * TOKEN_EXPIRED, distinct from TOKEN_INVALID; the server-side backstop
 * (idle_in_transaction_session_timeout = lease + 1 s on PostgreSQL) never has to fire.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Broker, type Reservation } from 'threadbroker';
import { percentile, record } from '../helpers/figures.js';
import { Ledger } from '../helpers/ledger.js';
import { codeOf, endState, relConfig } from '../helpers/reliability.js';
import { Admin, BACKSTOP_FIRED, PgLog, sleep, waitFor } from '../helpers/server-admin.js';
import { KINDS, ph } from '../helpers/test-setup.js';

const IDLE = 2_000;
const MAX = 10_000;
const TICK = 50;
const PER_ROUND = 7;
const ROUNDS = 3;

for (const kind of KINDS) {
  describe(`${kind}: F8 lease expiry`, () => {
    let admin: Admin;
    let ledger: Ledger;

    beforeAll(async () => {
      admin = new Admin(kind);
      ledger = new Ledger(kind, admin, 'f8', 4);
      await ledger.create(10);
      await waitFor('no broker sessions left', async () => (await admin.sessions()) === 0, 15_000);
    });

    afterAll(async () => {
      await ledger.drop();
      await admin.close();
    });

    it(`${ROUNDS} × ${PER_ROUND} idle leases (${IDLE} ms) and ${PER_ROUND} busy ones past their ${MAX} ms lifetime`, async () => {
      const log = await PgLog.mark();
      const broker = await Broker.start(relConfig(kind, { max: 16, acquireTimeoutMillis: 10_000 }, { housekeepingMillis: TICK, idleTimeoutMillis: IDLE, maxLifetimeMillis: MAX }));
      const db = broker.connect();
      const insert = `insert into ${ledger.tables().ledger} (op_id, worker, kind, amount, note) values (${ph(kind, 1)}, 1, 'insert', 1, '')`;
      const written: string[] = [];

      /** Opens a transaction that writes; returns when its last statement answered. */
      const open = async (): Promise<{ r: Reservation; token: string; usedAt: number }> => {
        const r = await db.reserve('db');
        await r.begin();
        const opId = randomUUID();
        written.push(opId);
        await r.query(insert, [opId]);
        return { r, token: r.token, usedAt: Date.now() };
      };

      /** Polls a token until refused; returns when, and with what. */
      const refusal = async (token: string, bound: number): Promise<{ at: number; code: string }> => {
        const end = Date.now() + bound;
        for (;;) {
          const code = await codeOf(db.attach(token));
          if (code !== 'OK') return { at: Date.now(), code };
          if (Date.now() > end) return { at: Date.now(), code: 'STILL_LIVE' };
          await sleep(2);
        }
      };

      // Busy leases: a statement every 300 ms until refused.
      const busy = await Promise.all(Array.from({ length: PER_ROUND }, async () => {
        const claimedAt = Date.now();
        const { r, token } = await open();
        return { r, token, claimedAt };
      }));
      const busyRuns = busy.map(async ({ r, token, claimedAt }) => {
        // The token is watched from the start; the statements go on until it is refused.
        const watching = refusal(token, MAX + 2_000);
        let done = false;
        void watching.then(() => (done = true));
        let code = 'OK';
        while (!done && code === 'OK') {
          await sleep(300);
          code = await codeOf(r.query('select 1'));
        }
        const refused = await watching;
        return { lateMillis: refused.at - (claimedAt + MAX), code: refused.code, lastStatement: code };
      });

      const idleLate: number[] = [];
      const idleCodes: string[] = [];
      for (let round = 0; round < ROUNDS; round++) {
        const held = await Promise.all(Array.from({ length: PER_ROUND }, () => open()));
        const refused = await Promise.all(held.map((h) => refusal(h.token, IDLE + 2_000)));
        refused.forEach((x, i) => {
          idleLate.push(x.at - (held[i].usedAt + IDLE));
          idleCodes.push(x.code);
        });
        for (const h of held) expect(await codeOf(h.r.query('select 1'))).toBe('TOKEN_EXPIRED');
        // Reclaimed slots are free once their rollback ran; the next round reserves again.
        await waitFor('the round\'s slots free', () => broker.stats().databases.db.reserved === PER_ROUND, 5_000, 2);
      }
      const busyOut = await Promise.all(busyRuns);
      await waitFor('every slot free', () => broker.stats().databases.db.reserved === 0, 5_000);
      // A forged token is a different refusal.
      const forged = busy[0].token.slice(0, -2) + (busy[0].token.endsWith('A') ? 'QA' : 'AA');
      const forgedCode = await codeOf(db.attach(forged));
      const present = new Set((await admin.rows(`select op_id from ${ledger.tables().ledger}`)).map((x) => String(x.op_id)));
      const survived = written.filter((id) => present.has(id)).length;
      const end = await endState(broker, admin);
      await broker.close();
      const backstops = kind === 'pg' ? await log.count(BACKSTOP_FIRED) : 0;
      const late = [...idleLate, ...busyOut.map((b) => b.lateMillis)];
      const figures = {
        expiries: idleLate.length + busyOut.length, idle: idleLate.length, maxLifetime: busyOut.length,
        reclaimP50Millis: percentile(late, 50), reclaimP99Millis: percentile(late, 99), reclaimMaxMillis: Math.max(...late),
        earliestMillis: Math.min(...late), codes: [...new Set([...idleCodes, ...busyOut.map((b) => b.code)])], forgedCode,
        writesSurvived: survived, backstopFirings: backstops, pgLogReadable: log.readable, end,
      };
      record('F8', kind, figures);
      console.log(`[F8] ${kind}: ${JSON.stringify(figures)}`);
      expect(figures.codes).toEqual(['TOKEN_EXPIRED']);
      expect(forgedCode).toBe('TOKEN_INVALID');
      // Never before the lease, and within one tick (plus the rollback and this poll) after it.
      expect(Math.min(...late)).toBeGreaterThanOrEqual(-5);
      expect(Math.max(...late)).toBeLessThan(TICK + 150);
      expect(survived).toBe(0);
      expect(backstops).toBe(0);
      expect(end).toEqual({ idleInTx: 0, reserved: 0, busy: 0, waiting: 0 });
    });
  });
}
