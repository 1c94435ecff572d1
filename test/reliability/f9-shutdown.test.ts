/**
 * RELIABILITY.md F9, shutdown with reservations outstanding, in a child process: `close()` with
 * 3 open tokens (transactions that wrote), a statement running and 20 requests queued. Queued
 * requests reject with BROKER_CLOSED, open transactions roll back, `close()` resolves within its
 * bound, no handle is left and the process exits on its own (compare pg #2199).
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { record } from '../helpers/figures.js';
import { Ledger } from '../helpers/ledger.js';
import { CANARY, relConfig } from '../helpers/reliability.js';
import { Admin, waitFor } from '../helpers/server-admin.js';
import { KINDS } from '../helpers/test-setup.js';

const CHILD = fileURLToPath(new URL('../fixtures/workers/rel-close-child.mjs', import.meta.url));

interface ChildReport {
  closeMillis: number;
  waitingBefore: number;
  reservedBefore: number;
  queued: Record<string, number>;
  running: string;
  written: string[];
  handles: string[];
  closedAt: number;
}

for (const kind of KINDS) {
  describe(`${kind}: F9 shutdown with reservations outstanding`, () => {
    let admin: Admin;
    let ledger: Ledger;

    beforeAll(async () => {
      admin = new Admin(kind);
      ledger = new Ledger(kind, admin, 'f9', 2);
      await ledger.create(10);
      await waitFor('no broker sessions left', async () => (await admin.sessions()) === 0, 15_000);
    });

    afterAll(async () => {
      await ledger.drop();
      await admin.close();
    });

    it('close() with 3 open tokens, a running statement and 20 queued requests; the process exits on its own', async () => {
      const config = relConfig(kind, { max: 4, acquireTimeoutMillis: 20_000 });
      const child = spawn(process.execPath, [CHILD, JSON.stringify(config), ledger.tables().ledger, kind], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      const exit = await new Promise<{ code: number | string; at: number }>((resolve) => {
        const timer = setTimeout(() => {
          child.kill('SIGKILL');
          resolve({ code: 'did not exit on its own within 30 s', at: Date.now() });
        }, 30_000);
        child.once('exit', (c, sig) => {
          clearTimeout(timer);
          resolve({ code: c ?? String(sig), at: Date.now() });
        });
      });
      expect({ code: exit.code, err }).toEqual({ code: 0, err: '' });
      expect(out).not.toContain(CANARY);
      const report = JSON.parse(out.trim().split('\n').pop()!) as ChildReport;
      await waitFor('the child\'s sessions gone on the server', async () => (await admin.sessions()) === 0, 40_000, 50);
      const present = await admin.scalar(`select count(*) as n from ${ledger.tables().ledger}`);
      const figures = {
        tokens: report.reservedBefore, queued: report.waitingBefore, queuedCodes: report.queued, running: report.running,
        closeMillis: Math.round(report.closeMillis), exitAfterCloseMillis: exit.at - report.closedAt,
        handlesLeft: report.handles.length, handles: report.handles, rolledBack: report.written.length - present,
      };
      record('F9', kind, figures);
      console.log(`[F9] ${kind}: ${JSON.stringify(figures)}`);
      expect(report.reservedBefore).toBe(3);
      expect(report.waitingBefore).toBe(20);
      expect(report.queued).toEqual({ BROKER_CLOSED: 20 });
      expect(['BROKER_CLOSED', 'CONNECTION_LOST']).toContain(report.running);
      expect(report.closeMillis).toBeLessThan(3_000);
      expect(report.handles).toEqual([]);
      expect(present).toBe(0);
      expect(exit.at - report.closedAt).toBeLessThan(2_000);
    });
  });
}
