/**
 * The three workloads, their SQL per driver, and the closed loop every configuration runs
 * (in a worker or in the main thread). Imported by the runner and by the worker fixtures.
 */
import { performance } from 'node:perf_hooks';
import { newHistogram, record } from './histogram.mjs';

export const TABLE = 'bench_items';
export const TABLE_ROWS = 100_000;
export const RANGE_ROWS = 100;
export const WORKLOADS = ['select1', 'point', 'range'];
export const WORKLOAD_TITLES = { select1: 'SELECT 1', point: 'point select (PK, 100k rows)', range: '100-row range' };

const COLUMNS = 'id, name, category, price, qty, created_at';

/**
 * The statement of a workload for a driver, its parameter maker and the row count each answer must have.
 * @param {'pg'|'mysql'} driver
 * @param {string} workload
 */
export function statement(driver, workload) {
  const p = driver === 'pg' ? (i) => `$${i}` : () => '?';
  switch (workload) {
    case 'select1':
      return { sql: 'SELECT 1 AS x', params: () => undefined, rows: 1 };
    case 'point':
      return {
        sql: `SELECT ${COLUMNS} FROM ${TABLE} WHERE id = ${p(1)}`,
        params: (rnd) => [1 + Math.floor(rnd() * TABLE_ROWS)],
        rows: 1,
      };
    case 'range':
      return {
        sql: `SELECT ${COLUMNS} FROM ${TABLE} WHERE id >= ${p(1)} AND id < ${p(2)} ORDER BY id`,
        params: (rnd) => {
          const lo = 1 + Math.floor(rnd() * (TABLE_ROWS - RANGE_ROWS + 1));
          return [lo, lo + RANGE_ROWS];
        },
        rows: RANGE_ROWS,
      };
    default:
      throw new Error(`unknown workload ${workload}`);
  }
}

/** A small deterministic PRNG (mulberry32) so every configuration draws the same kind of keys. */
export function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// Layout of the control block shared by the runner and the callers (an Int32Array on a SharedArrayBuffer).
export const PHASE = 0; // 0 warm-up, 1 measure, 2 stop
export const READY = 1; // tasks whose callers are running
export const BARRIER = 2; // tasks that reached the close barrier
export const CONTROL_WORDS = 4;
export const WARMUP = 0;
export const MEASURE = 1;
export const STOP = 2;

/**
 * A closed loop: `callers` concurrent callers, each issuing its next call as soon as the last one
 * answered, until the control block says stop (or the deadline passes, or the iteration cap is hit).
 * Calls completed while the phase is MEASURE are counted and their latencies recorded.
 *
 * @param {{ callers: number, control: Int32Array, call: (rnd: () => number) => Promise<number>,
 *           expectRows: number, seed: number, deadline: number, maxIterations?: number,
 *           elu?: typeof performance.eventLoopUtilization }} o
 *   `call` resolves to the number of rows it got; `deadline` is a `Date.now()` bound.
 */
export async function closedLoop(o) {
  const hist = newHistogram();
  const control = o.control;
  const maxIterations = o.maxIterations ?? 50_000_000;
  let count = 0;
  let errors = 0;
  let wrongRows = 0;
  let firstError;
  let eluStart;
  let eluDelta;
  const elu = o.elu ?? performance.eventLoopUtilization;
  const caller = async (k) => {
    const rnd = prng(o.seed * 7919 + k);
    for (let it = 0; it < maxIterations; it++) {
      const before = Atomics.load(control, PHASE);
      if (before === STOP) break;
      if (before === MEASURE && eluStart === undefined) eluStart = elu();
      if ((it & 1023) === 0 && Date.now() > o.deadline) break;
      const t0 = performance.now();
      try {
        const n = await o.call(rnd);
        const t1 = performance.now();
        if (n !== o.expectRows) wrongRows++;
        if (Atomics.load(control, PHASE) === MEASURE) {
          count++;
          record(hist, (t1 - t0) * 1000);
        }
      } catch (err) {
        errors++;
        firstError ??= err instanceof Error ? `${err.name}: ${(err.code ?? '')} ${err.message}` : String(err);
        if (errors > 1000) break;
        await new Promise((r) => setTimeout(r, 1));
      }
    }
    if (eluStart !== undefined && eluDelta === undefined) eluDelta = elu(eluStart);
  };
  const all = [];
  for (let k = 0; k < o.callers; k++) all.push(caller(k));
  Atomics.add(control, READY, 1);
  await Promise.all(all);
  return {
    count,
    errors,
    wrongRows,
    firstError,
    hist,
    elu: eluDelta?.utilization ?? null,
  };
}
