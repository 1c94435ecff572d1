/**
 * RELIABILITY.md F2, a kill in the middle of a reserved transaction, and during COMMIT.
 *
 * - The token holder ran 2 of 3 statements of a transfer, then its backend is killed
 *   (`pg_terminate_backend`, `KILL CONNECTION`): the next use of the token — in the thread that
 *   holds it or in another that attached it — answers TX_CONNECTION_LOST at once, never hangs;
 *   none of the transaction's writes is visible; after release the slot is free, the token is
 *   refused (TOKEN_EXPIRED) and the dead connection is never handed out again.
 * - The fault lands during COMMIT (the proxy cuts the connection as COMMIT goes by: either the
 *   server runs it and its reply is lost, or it never arrives): COMMIT_OUTCOME_UNKNOWN with the
 *   transaction id on PostgreSQL; the ledger agrees with pg_xact_status, and every unknown outcome
 *   is resolved by the op id; nothing is retried.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Broker, BrokerError } from 'threadbroker';
import { Agent } from '../helpers/agent.js';
import { record } from '../helpers/figures.js';
import { Ledger, type OpOutcomes } from '../helpers/ledger.js';
import { codeOf, endState, relConfig, relUrl, serverOf, sessionIdSql } from '../helpers/reliability.js';
import { Admin, waitFor } from '../helpers/server-admin.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';
import { KINDS, ph } from '../helpers/test-setup.js';

const KILLS = 20;
const COMMIT_CUTS = 10;

for (const kind of KINDS) {
  describe(`${kind}: F2 kill in the middle of a reserved transaction`, () => {
    let admin: Admin;
    let ledger: Ledger;
    let proxy: TcpProxy;
    const p = (i: number): string => ph(kind, i);

    beforeAll(async () => {
      admin = new Admin(kind);
      ledger = new Ledger(kind, admin, 'f2', 4);
      await ledger.create(10);
      proxy = await TcpProxy.start(serverOf(kind));
      await waitFor('no broker sessions left', async () => (await admin.sessions()) === 0, 15_000);
    });

    afterAll(async () => {
      await proxy.close();
      await ledger.drop();
      await admin.close();
    });

    it(`${KILLS} kills after 2 of 3 statements and ${COMMIT_CUTS} faults during COMMIT`, async () => {
      const broker = await Broker.start(relConfig(kind, { url: relUrl(kind, proxy.port), max: 4 }));
      const db = broker.connect();
      const agent = Agent.spawn(broker);
      await agent.ready;
      const outcomes: OpOutcomes = { ack: [], failed: [], unknown: [] };
      const t = ledger.tables();
      const moveSql = `update ${t.accounts} set balance = balance + ${p(1)} where id = ${p(2)}`;
      const insertSql = `insert into ${t.ledger} (op_id, worker, kind, acct_from, acct_to, amount, note) values (${p(1)}, 0, 'transfer', ${p(2)}, ${p(3)}, ${p(4)}, '')`;
      let reportMillis = 0;
      let leakedSlots = 0;
      let deadHandedOut = 0;
      try {
        for (let i = 0; i < KILLS; i++) {
          const opId = randomUUID();
          const r = await db.reserve('db', { idleTimeoutMillis: 30_000 });
          await r.begin();
          await r.query(moveSql, [-5, 1]);
          await r.query(moveSql, [5, 2]);
          const sid = Number((await r.query<{ sid: unknown }>(sessionIdSql(kind))).rows[0].sid);
          // Every other time the token was handed to another thread, which makes the next use.
          const handed = i % 2 === 1;
          const token = r.token;
          if (handed) await agent.call('attach', { key: 'h', token });
          await admin.kill([sid]);
          await waitFor('the killed session gone', async () => !(await admin.sessionIds()).includes(sid));
          const t0 = performance.now();
          const code = handed
            ? await agent.code('query', { key: 'h', sql: insertSql, params: [opId, 1, 2, 5] })
            : await codeOf(r.query(insertSql, [opId, 1, 2, 5]));
          reportMillis = Math.max(reportMillis, performance.now() - t0);
          expect(code).toBe('TX_CONNECTION_LOST');
          expect(await codeOf(r.commit())).toBe('TX_CONNECTION_LOST');
          outcomes.failed.push(opId);
          await r.release();
          if (handed) await agent.call('drop', { key: 'h' });
          expect(await codeOf(db.attach(token))).toBe('TOKEN_EXPIRED');
          if (broker.stats().databases.db.reserved !== 0) leakedSlots++;
          // The dead connection is never handed out again.
          for (let k = 0; k < 5; k++) if ((await codeOf(db.query('db', 'select 1'))) !== 'OK') deadHandedOut++;
        }
        let unknownResolved = 0;
        for (let i = 0; i < COMMIT_CUTS; i++) {
          const opId = randomUUID();
          const r = await db.reserve('db');
          await r.begin();
          await r.query(moveSql, [-3, 3]);
          await r.query(moveSql, [3, 4]);
          await r.query(insertSql, [opId, 3, 4, 3]);
          proxy.cutOn({ match: 'COMMIT', mode: i % 2 === 0 ? 'after-reply' : 'before' });
          const err = await r.commit().then(() => undefined, (e: BrokerError) => e);
          expect(err?.code).toBe('COMMIT_OUTCOME_UNKNOWN');
          if (kind === 'pg') expect(err?.xid).toMatch(/^\d+$/);
          outcomes.unknown.push({ opId, code: err!.code, ...(err?.xid !== undefined ? { xid: err.xid } : {}) });
          await r.release();
          unknownResolved++;
        }
        await waitFor('no idle-in-transaction session left', async () => (await admin.idleInTransaction()) === 0, 10_000);
        const report = await ledger.verify(outcomes);
        const end = await endState(broker, admin);
        const figures = {
          killsMidTx: KILLS, commitFaults: COMMIT_CUTS, maxReportMillis: Math.round(reportMillis * 10) / 10,
          partial: report.partial, phantom: report.phantom.length, leakedSlots, deadHandedOut,
          unknown: report.unknown, unknownCommitted: report.unknownCommitted, unknownAborted: report.unknownAborted,
          unknownResolved, xidMismatch: report.xidMismatch.length, end,
        };
        record('F2', kind, figures);
        console.log(`[F2] ${kind}: ${JSON.stringify(figures)}`);
        expect(reportMillis).toBeLessThan(100);
        expect(report.phantom).toEqual([]);
        expect(report.partial).toBe(0);
        expect(report.sumAfter).toBe(report.sumBefore);
        expect(report.xidMismatch).toEqual([]);
        expect(report.unknownCommitted).toBe(COMMIT_CUTS / 2);
        expect(report.unknownAborted).toBe(COMMIT_CUTS / 2);
        expect(leakedSlots).toBe(0);
        expect(deadHandedOut).toBe(0);
        expect(end).toEqual({ idleInTx: 0, reserved: 0, busy: 0, waiting: 0 });
      } finally {
        proxy.clear();
        await agent.worker?.terminate();
        await broker.close();
      }
    });
  });
}
