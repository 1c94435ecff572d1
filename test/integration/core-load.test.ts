/**
 * Broker core, load at the cap (RELIABILITY.md L1, cap oracle): 8 threads × 200 concurrent
 * queries with `max: 4`, through every wiring. A monitor connection samples the broker login's
 * server-side session count during the run; it must never exceed 4, the pool must never have
 * opened more than 4 connections, and every query must get its own parameter back.
 */
import { relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Broker } from 'threadbroker';
import type { DriverKind } from '../../src/config/types.js';
import { ConnectionMonitor } from '../helpers/monitor.js';
import { KINDS, configFor } from '../helpers/test-setup.js';

const THREADS = 8;
const PER_THREAD = 200;
const MAX = 4;
const TASK = new URL('../fixtures/workers/core-load-task.mjs', import.meta.url);
const PLAIN = new URL('../fixtures/workers/core-load-worker.mjs', import.meta.url);

interface Summary {
  threadId: number;
  wrong: number;
  answered: number;
  sids: number[];
}

interface Task {
  kind: DriverKind;
  base: number;
  n: number;
  sab: SharedArrayBuffer;
  parties: number;
}

/** Bounded poll on a condition (not a sleep: returns as soon as it holds). */
async function waitFor(what: string, cond: () => boolean | Promise<boolean>, timeoutMillis = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMillis;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

function tasks(kind: DriverKind): Task[] {
  const sab = new SharedArrayBuffer(4);
  return Array.from({ length: THREADS }, (_, t) => ({ kind, base: (t + 1) * 100_000, n: PER_THREAD, sab, parties: THREADS }));
}

/** Waits for a plain worker's single summary message and its exit. */
function summaryOf(w: Worker): Promise<Summary> {
  return new Promise((resolve, reject) => {
    let out: Summary | undefined;
    w.once('message', (m: { ok?: Summary; error?: { code?: string; message: string } }) => {
      if (m.ok) out = m.ok;
      else reject(new Error(`worker failed: ${m.error?.code} ${m.error?.message}`));
    });
    w.once('error', reject);
    w.once('exit', (code) => (out !== undefined ? resolve(out) : reject(new Error(`worker exited with ${code} and no summary`))));
  });
}

function createdTotal(metrics: string): number {
  const m = /^threadbroker_connections_created_total\{database="db"\} (\d+)$/m.exec(metrics);
  if (m === null) throw new Error('metrics lack threadbroker_connections_created_total');
  return Number(m[1]);
}

for (const kind of KINDS) {
  describe(`${kind}: ${THREADS} threads × ${PER_THREAD} concurrent queries, max ${MAX}`, () => {
    let broker: Broker;
    let monitor: ConnectionMonitor;

    beforeEach(async () => {
      monitor = new ConnectionMonitor(kind);
      // A previous broker's sessions must be gone, or they would count against this one.
      await waitFor('no broker sessions on the server', async () => (await monitor.count()) === 0);
      broker = await Broker.start(configFor(kind, { max: MAX }));
      await monitor.start(5);
    });

    afterEach(async () => {
      await monitor.stop();
      await broker.close();
    });

    async function check(run: (t: Task[]) => Promise<Summary[]>): Promise<void> {
      const started = performance.now();
      const out = await run(tasks(kind));
      const elapsed = performance.now() - started;
      await monitor.stop();
      // Every thread answered on its own thread, every query got its own parameter back.
      expect(new Set(out.map((s) => s.threadId)).size).toBe(THREADS);
      expect(out.map((s) => s.answered)).toEqual(new Array(THREADS).fill(PER_THREAD));
      expect(out.map((s) => s.wrong)).toEqual(new Array(THREADS).fill(0));
      // The cap: on the server, in the sessions that answered, and in the pool's own count.
      const sids = new Set(out.flatMap((s) => s.sids));
      expect(sids.size).toBeLessThanOrEqual(MAX);
      expect(monitor.samples).toBeGreaterThan(0);
      expect(monitor.max).toBeGreaterThan(0);
      expect(monitor.max).toBeLessThanOrEqual(MAX);
      expect(createdTotal(broker.metrics())).toBeLessThanOrEqual(MAX);
      const s = broker.stats().databases.db;
      expect(s).toMatchObject({ max: MAX, busy: 0, waiting: 0 });
      expect(s.open).toBeLessThanOrEqual(MAX);
      console.log(`[core-load] ${kind}: ${THREADS * PER_THREAD} queries in ${elapsed.toFixed(0)} ms, peak server sessions ${monitor.max}/${MAX} (${monitor.samples} samples), sessions used ${sids.size}`);
    }

    it('through piscina', async () => {
      const pool = broker.piscina({ filename: TASK.href, minThreads: THREADS, maxThreads: THREADS });
      try {
        await check((ts) => Promise.all(ts.map((t) => pool.run(t) as Promise<Summary>)));
      } finally {
        await pool.destroy();
      }
    });

    it('through tinypool', async () => {
      const pool = broker.tinypool({ filename: TASK.href, minThreads: THREADS, maxThreads: THREADS });
      try {
        await check((ts) => Promise.all(ts.map((t) => pool.run(t) as Promise<Summary>)));
      } finally {
        await pool.destroy();
      }
    });

    it('tinypool takes a file path, relative (to the working directory) or absolute, as Tinypool does', async () => {
      const abs = fileURLToPath(TASK);
      for (const filename of [abs, relative(process.cwd(), abs), `./${relative(process.cwd(), abs)}`]) {
        const pool = broker.tinypool({ filename, minThreads: 1, maxThreads: 1 });
        try {
          const out = (await pool.run({ kind, base: 7, n: 3 })) as Summary;
          expect(out).toMatchObject({ wrong: 0, answered: 3 });
        } finally {
          await pool.destroy();
        }
      }
    });

    it('through comlink (broker.spawn)', async () => {
      const apis = Array.from({ length: THREADS }, () => broker.spawn<{ run(t: Task): Promise<Summary> }>(TASK));
      await check((ts) => Promise.all(ts.map((t, i) => apis[i].run(t))));
    });

    it('through plain workers (broker.worker)', async () => {
      await check((ts) => Promise.all(ts.map((t) => summaryOf(broker.worker(PLAIN, { workerData: { ...t } })))));
    });

    it('through manual ports (broker.port() + connect(port))', async () => {
      await check((ts) =>
        Promise.all(
          ts.map((t) => {
            const port = broker.port();
            return summaryOf(new Worker(PLAIN, { workerData: { ...t, port }, transferList: [port] }));
          }),
        ),
      );
    });
  });
}
