#!/usr/bin/env node
/**
 * threadbroker benchmarks: the broker against what users would pick instead, measured side by
 * side in one run and reported as ratios. See benchmarks/README.md for the method.
 *
 *   npm run build && npm run bench              # full: ~10 s of measurement per cell
 *   npm run bench -- --quick                    # about a minute
 *   npm run bench -- --smoke --out DIR          # a second or two per cell (CI)
 *   npm run bench -- --help
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import v8 from 'node:v8';
import vm from 'node:vm';
import { Worker } from 'node:worker_threads';
import { Piscina } from 'piscina';
import { Broker } from 'threadbroker';
import { makeCeiling } from './lib/ceiling.mjs';
import { foreignCores, foreignTicks } from './lib/machine.mjs';
import { createDirectPool } from './lib/direct-pool.mjs';
import { merge, newHistogram, summary } from './lib/histogram.mjs';
import { formatSelfTime, selfTime, startProfile } from './lib/profile.mjs';
import { chartSvg, markdownReport, printCell, printSummary } from './lib/report.mjs';
import { brokerSessionsSql, brokerUrl, directUrl, prepareServer } from './lib/setup.mjs';
import {
  closedLoop, CONTROL_WORDS, MEASURE, PHASE, READY, STOP, statement, WORKLOAD_TITLES, WORKLOADS,
} from './lib/workloads.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const BROKERED_FIXTURE = pathToFileURL(join(here, 'fixtures/brokered.mjs')).href;
const DIRECT_FIXTURE = pathToFileURL(join(here, 'fixtures/direct.mjs')).href;
const SAMPLER_FIXTURE = new URL('./fixtures/conn-sampler.mjs', import.meta.url);

// ---------------------------------------------------------------------------------------------
// Settings

const MODES = {
  full: { rounds: 10, warmup: 0.25, measure: 1, hopRounds: 6, hopWarmup: 0.2, hopMeasure: 1, workers: [2, 4] },
  quick: { rounds: 3, warmup: 0.1, measure: 0.3, hopRounds: 3, hopWarmup: 0.05, hopMeasure: 0.15, workers: [2, 4] },
  smoke: { rounds: 1, warmup: 0.3, measure: 1, hopRounds: 1, hopWarmup: 0.1, hopMeasure: 0.4, workers: [2], workloads: ['select1'] },
};

const HELP = `usage: node benchmarks/run.mjs [--quick | --smoke] [options]
  --drivers pg,mysql        databases to measure (default both; env PG_URL / MYSQL_URL are admin URLs)
  --workloads select1,point,range
  --workers 2,4             piscina threads of the brokered and per-worker configurations
  --configs LIST            subset of brokered-N, per-worker-N, main-only, ceiling
  --rounds N --warmup S --measure S    interleaved rounds, seconds of warm-up and measurement per window
  --callers 64 --max 8      closed-loop callers in all, connections per configuration
  --no-hop --no-reserve     skip the concurrency-1 measurements
  --max-other C --retries N re-measure a window during which other processes on the machine used more
                            than C cores, up to N times (full: 0.25 and 2; quick/smoke: no retries)
  --out DIR                 where the JSON and the SVG go (default benchmarks/results, or results/quick.tmp for --quick)
  --no-write                print only
  --hop-measure S           seconds per window of the concurrency-1 measurements
  --cpu-prof DIR            profile the main thread during every brokered measurement window (node:inspector,
                            as --cpu-prof but only the window); writes .cpuprofile files and prints the top 15
                            self-time functions. Profiling slows the main thread: do not publish those numbers.
  --no-readme               do not update the table in benchmarks/README.md (full runs update it)
  --report FILE.json        measure nothing: print and re-render the markdown and SVG of an earlier run next to
                            it (and, for a full run in benchmarks/results, the README section)`;

function parseArgs(argv) {
  const flags = new Set();
  const values = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) throw new Error(`unexpected argument ${a}\n${HELP}`);
    const [k, v] = a.slice(2).split('=', 2);
    if (['quick', 'smoke', 'no-hop', 'no-reserve', 'no-write', 'no-readme', 'help'].includes(k)) flags.add(k);
    else values[k] = v ?? argv[++i];
  }
  if (flags.has('help')) {
    console.log(HELP);
    process.exit(0);
  }
  const mode = flags.has('smoke') ? 'smoke' : flags.has('quick') ? 'quick' : 'full';
  const m = MODES[mode];
  const list = (k, d) => (values[k] !== undefined ? String(values[k]).split(',').map((s) => s.trim()).filter(Boolean) : d);
  const num = (k, d) => {
    if (values[k] === undefined) return d;
    const n = Number(values[k]);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`--${k} must be a positive number`);
    return n;
  };
  const s = {
    mode,
    drivers: list('drivers', ['pg', 'mysql']),
    workloads: list('workloads', m.workloads ?? WORKLOADS),
    workers: list('workers', m.workers.map(String)).map(Number),
    configs: list('configs', undefined),
    rounds: Math.round(num('rounds', m.rounds)),
    warmup: num('warmup', m.warmup),
    measure: num('measure', m.measure),
    hopRounds: Math.round(num('rounds', m.hopRounds)),
    hopWarmup: m.hopWarmup,
    hopMeasure: num('hop-measure', m.hopMeasure),
    callers: Math.round(num('callers', 64)),
    max: Math.round(num('max', 8)),
    hop: !flags.has('no-hop'),
    reserve: !flags.has('no-reserve'),
    write: !flags.has('no-write'),
    readme: !flags.has('no-readme') && mode === 'full' && values.out === undefined && values['cpu-prof'] === undefined && values.configs === undefined,
    out: values.out !== undefined ? resolve(values.out) : join(here, 'results', mode === 'full' ? '' : `${mode}.tmp`),
    maxOther: num('max-other', mode === 'full' ? 0.25 : Infinity),
    retries: values.retries !== undefined ? Math.max(0, Math.round(Number(values.retries))) : mode === 'full' ? 2 : 0,
    cpuProf: values['cpu-prof'] !== undefined ? resolve(values['cpu-prof']) : undefined,
    pgUrl: process.env.PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test',
    mysqlUrl: process.env.MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/test',
  };
  for (const d of s.drivers) if (d !== 'pg' && d !== 'mysql') throw new Error(`unknown driver ${d}`);
  for (const w of s.workloads) if (!WORKLOADS.includes(w)) throw new Error(`unknown workload ${w}`);
  for (const n of s.workers) {
    if (!Number.isInteger(n) || n < 1 || s.callers % n !== 0 || s.max % n !== 0) {
      throw new Error(`--workers ${n}: must divide both --callers (${s.callers}) and --max (${s.max})`);
    }
  }
  return s;
}

// ---------------------------------------------------------------------------------------------
// Small helpers

const CORES = os.cpus().length;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const median = (xs) => {
  const v = xs.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
};
const log = (...a) => console.log(...a);

async function waitUntil(cond, timeoutMillis, what) {
  const until = Date.now() + timeoutMillis;
  for (let i = 0; i < 1_000_000; i++) {
    const v = cond();
    if (v instanceof Error) throw v;
    if (v) return;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(2);
  }
}

/** Busy and total jiffies of all CPUs (Linux), to see how much else ran on the machine. */
function systemCpu() {
  try {
    const f = readFileSync('/proc/stat', 'utf8');
    const v = f.slice(0, f.indexOf('\n')).trim().split(/\s+/).slice(1).map(Number);
    const idle = v[3] + (v[4] ?? 0);
    const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
    return { busy: total - idle, total };
  } catch {
    return undefined;
  }
}

/** On-CPU and run-queue-waiting nanoseconds of the main thread (Linux schedstat). */
function mainSched() {
  try {
    const [run, wait] = readFileSync(`/proc/self/task/${process.pid}/schedstat`, 'utf8').split(' ').map(Number);
    return { run, wait };
  } catch {
    return undefined;
  }
}

// A full GC before the memory samples that should show what is retained (not in any measured window).
v8.setFlagsFromString('--expose-gc');
const fullGc = vm.runInNewContext('gc');

function memorySample(collect = false) {
  if (collect) fullGc();
  const m = process.memoryUsage();
  return { rss: m.rss, heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external, arrayBuffers: m.arrayBuffers };
}

/**
 * One measurement window around `start` (which launches the callers): wait until `tasks` callers'
 * groups are running, warm up, then measure with the main thread's ELU and the process CPU.
 */
async function window(control, tasks, results, timing, hooks = {}) {
  let failure;
  const settled = results.map((p) => p.catch((err) => {
    failure ??= err;
    Atomics.store(control, PHASE, STOP);
    throw err;
  }));
  try {
    await waitUntil(() => failure ?? Atomics.load(control, READY) >= tasks, 30_000, 'the callers to start');
    await sleep(timing.warmup * 1000);
    const profiler = hooks.profile ? await startProfile() : undefined;
    const elu0 = performance.eventLoopUtilization();
    const cpu0 = process.cpuUsage();
    const sys0 = systemCpu();
    const other0 = foreignTicks();
    const sched0 = mainSched();
    const t0 = performance.now();
    Atomics.store(control, PHASE, MEASURE);
    await sleep(timing.measure * 1000);
    Atomics.store(control, PHASE, STOP);
    const t1 = performance.now();
    const sched1 = mainSched();
    const elu = performance.eventLoopUtilization(elu0);
    const cpu = process.cpuUsage(cpu0);
    const sys1 = systemCpu();
    const other1 = foreignTicks();
    hooks.measured?.();
    if (profiler) hooks.profile(await profiler.stop());
    const outs = await Promise.all(settled);
    const seconds = (t1 - t0) / 1000;
    const sysCpu = sys0 && sys1 && sys1.total > sys0.total ? ((sys1.busy - sys0.busy) / (sys1.total - sys0.total)) * CORES : null;
    const ns = (t1 - t0) * 1e6;
    return {
      outs, seconds, mainElu: elu.utilization, procCpu: (cpu.user + cpu.system) / 1e6 / seconds, sysCpu, otherCpu: foreignCores(other0, other1, seconds),
      mainCpu: sched0 && sched1 ? (sched1.run - sched0.run) / ns : null,
      mainWait: sched0 && sched1 ? (sched1.wait - sched0.wait) / ns : null,
    };
  } finally {
    Atomics.store(control, PHASE, STOP);
    await Promise.allSettled(settled);
  }
}

function combine(w, threads) {
  const hist = newHistogram();
  let count = 0;
  let errors = 0;
  let wrongRows = 0;
  let firstError;
  const elus = [];
  for (const o of w.outs) {
    merge(hist, o.hist);
    count += o.count;
    errors += o.errors;
    wrongRows += o.wrongRows;
    firstError ??= o.firstError;
    if (o.elu !== null) elus.push(o.elu);
  }
  if (threads !== undefined) {
    const distinct = new Set(w.outs.map((o) => o.thread));
    if (distinct.size !== threads) throw new Error(`expected ${threads} distinct worker threads, got ${distinct.size}`);
  }
  const s = summary(hist);
  return {
    throughput: count / w.seconds,
    p50: s.p50,
    p99: s.p99,
    mean: s.mean,
    mainElu: w.mainElu,
    mainCpu: w.mainCpu,
    mainWait: w.mainWait,
    workerElu: threads !== undefined && elus.length > 0 ? elus.reduce((a, b) => a + b, 0) / elus.length : null,
    procCpu: w.procCpu,
    sysCpu: w.sysCpu,
    otherCpu: w.otherCpu,
    queries: count,
    seconds: w.seconds,
    errors,
    wrongRows,
    firstError,
  };
}

// ---------------------------------------------------------------------------------------------
// The configurations

function newControl() {
  return new Int32Array(new SharedArrayBuffer(CONTROL_WORDS * 4));
}

function split(total, parts) {
  return Array.from({ length: parts }, (_, i) => Math.floor(total / parts) + (i < total % parts ? 1 : 0));
}

/** Runs `tasks` closed-loop tasks on a piscina pool (one per worker) for one window. */
async function runOnPool(pool, tasks, callers, task, timing, hooks) {
  const control = newControl();
  const deadline = Date.now() + (timing.warmup + timing.measure) * 1000 + 60_000;
  const results = split(callers, tasks).map((c, i) =>
    pool.run({ ...task, cmd: 'loop', callers: c, control: control.buffer, seed: 1 + i + Math.floor(Math.random() * 1e6), deadline }));
  const w = await window(control, tasks, results, timing, hooks);
  return combine(w, tasks);
}

/** The main-thread-only configuration: the closed loop on one pool in this thread. */
async function runInMain(pool, callers, op, driver, timing) {
  const control = newControl();
  const st = statement(driver, op);
  const deadline = Date.now() + (timing.warmup + timing.measure) * 1000 + 60_000;
  const p = closedLoop({ callers, control, call: (rnd) => pool.query(st.sql, st.params(rnd)), expectRows: st.rows, seed: 7, deadline });
  const w = await window(control, 1, [p], timing);
  const out = combine(w, undefined);
  out.workerElu = null;
  return out;
}

async function closePiscina(pool, tasks, withBarrier) {
  if (withBarrier) {
    const control = newControl();
    const deadline = Date.now() + 10_000;
    await Promise.allSettled(Array.from({ length: tasks }, () => pool.run({ cmd: 'close', control: control.buffer, tasks, deadline })));
  }
  await pool.destroy();
}

function startSampler(driver, adminUrl) {
  const shared = new SharedArrayBuffer(8 * 4);
  const words = new Int32Array(shared);
  const worker = new Worker(SAMPLER_FIXTURE, {
    workerData: { driver, adminUrl, sql: brokerSessionsSql(driver), intervalMillis: 10, shared, maxMillis: 3_600_000 },
  });
  let error;
  worker.on('error', (err) => {
    error = err;
  });
  const exited = new Promise((r) => worker.once('exit', r));
  return {
    get peak() {
      return Atomics.load(words, 1);
    },
    get samples() {
      return Atomics.load(words, 2);
    },
    get error() {
      return error;
    },
    async stop() {
      Atomics.store(words, 3, 1);
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000).unref())]);
      await worker.terminate();
      return { peak: Atomics.load(words, 1), samples: Atomics.load(words, 2), sampleErrors: Atomics.load(words, 4), othersPeak: Atomics.load(words, 5) };
    },
  };
}

// ---------------------------------------------------------------------------------------------
// One driver

function summarize(runs, configIds, brokeredIds) {
  const cells = {};
  for (const id of configIds) {
    const rs = runs.map((round) => round[id]).filter(Boolean);
    if (rs.length === 0) continue;
    const vs = {};
    const over = {};
    for (const b of brokeredIds) {
      vs[b] = median(runs.map((round) => (round[id] && round[b] ? round[id].throughput / round[b].throughput : NaN)));
      over[b] = median(runs.map((round) => (round[id] && round[b] ? round[b].throughput / round[id].throughput : NaN)));
    }
    cells[id] = {
      throughput: median(rs.map((r) => r.throughput)),
      throughputMin: Math.min(...rs.map((r) => r.throughput)),
      throughputMax: Math.max(...rs.map((r) => r.throughput)),
      p50: median(rs.map((r) => r.p50)),
      p99: median(rs.map((r) => r.p99)),
      mean: median(rs.map((r) => r.mean)),
      mainElu: median(rs.map((r) => r.mainElu)),
      mainCpu: median(rs.map((r) => r.mainCpu)),
      mainWait: median(rs.map((r) => r.mainWait)),
      workerElu: median(rs.map((r) => r.workerElu)),
      procCpu: median(rs.map((r) => r.procCpu)),
      sysCpu: median(rs.map((r) => r.sysCpu)),
      otherCpu: median(rs.map((r) => r.otherCpu)),
      retried: rs.reduce((a, r) => a + (r.retried ?? 0), 0),
      // Half the range of the rounds' throughputs, relative to the median: the noise of this cell.
      spread: rs.length > 1 ? (Math.max(...rs.map((r) => r.throughput)) - Math.min(...rs.map((r) => r.throughput))) / 2 / median(rs.map((r) => r.throughput)) : null,
      errors: rs.reduce((a, r) => a + (r.errors ?? 0), 0),
      wrongRows: rs.reduce((a, r) => a + (r.wrongRows ?? 0), 0),
      firstError: rs.find((r) => r.firstError)?.firstError,
      vsBrokered: vs, // this ÷ brokered-N
      brokeredOver: over, // brokered-N ÷ this (issue 8's goal: brokered-N ÷ per-worker-N ≥ 1)
      rounds: rs,
    };
  }
  return cells;
}

/**
 * One window of one configuration; on a shared machine a window during which other tenants used
 * more than `--max-other` cores is measured again (up to `--retries` times) and the quietest kept.
 */
function measureCell(c, w, s) {
  return quiet(() => c.run(w, s), s, `${c.id} ${w}`);
}

async function quiet(run, s, label) {
  let best;
  for (let attempt = 0; attempt <= s.retries; attempt++) {
    const r = await run();
    r.retried = attempt;
    if (best === undefined || (r.otherCpu ?? 0) < (best.otherCpu ?? 0)) best = { ...r };
    if (!(r.otherCpu > s.maxOther)) break;
    log(`    ${label}: other processes used ${r.otherCpu.toFixed(2)} cores during the window; measuring again`);
  }
  return best;
}

async function runDriver(driver, s) {
  const adminUrl = driver === 'pg' ? s.pgUrl : s.mysqlUrl;
  const serverVersion = await prepareServer(driver, adminUrl, log);
  log(`\n=== ${driver} (${serverVersion}) ===`);
  // pg shows every session's user to any login; MariaDB's processlist needs the admin (PROCESS privilege).
  const sampler = startSampler(driver, driver === 'pg' ? directUrl(adminUrl) : adminUrl);
  const memory = { beforeStart: memorySample(true) };
  const broker = await Broker.start({ databases: { db: { driver, url: brokerUrl(adminUrl), max: s.max } } });
  memory.afterStart = memorySample(true);
  const poolOpts = { minThreads: 0, maxThreads: 0, concurrentTasksPerWorker: 1, idleTimeout: 3_600_000, atomics: 'async' };
  const brokered = new Map();
  const direct = new Map();
  const ownUrl = directUrl(adminUrl);
  const mainPool = createDirectPool(driver, ownUrl, s.max);
  const ceiling = await makeCeiling(driver, ownUrl, s.max);
  if (ceiling.tool === null) log(`ceiling: ${ceiling.reason}; skipped`);
  const memPeak = { rss: 0, heapUsed: 0, heapTotal: 0, external: 0, arrayBuffers: 0 };
  const profiles = [];
  const brokeredHooks = (op, n) => ({
    measured: () => {
      const m = memorySample();
      for (const k of Object.keys(memPeak)) memPeak[k] = Math.max(memPeak[k], m[k]);
    },
    profile: s.cpuProf === undefined ? undefined : (profile) => {
      const file = join(s.cpuProf, `main-${driver}-${op}-brokered-${n}-${profiles.length + 1}.cpuprofile`);
      writeFileSync(file, JSON.stringify(profile));
      profiles.push({ file, op, config: `brokered-${n}`, ...selfTime(profile, 15) });
    },
  });
  const baseTask = (op) => ({ op, driver, database: 'db', url: ownUrl });
  const configs = [];
  for (const n of s.workers) {
    brokered.set(n, broker.piscina({ ...poolOpts, filename: BROKERED_FIXTURE, minThreads: n, maxThreads: n }));
    direct.set(n, new Piscina({ ...poolOpts, filename: DIRECT_FIXTURE, minThreads: n, maxThreads: n }));
    configs.push({ id: `brokered-${n}`, run: (op, t) => runOnPool(brokered.get(n), n, s.callers, baseTask(op), t, t.prime ? undefined : brokeredHooks(op, n)) });
    configs.push({ id: `per-worker-${n}`, run: (op, t) => runOnPool(direct.get(n), n, s.callers, { ...baseTask(op), size: s.max / n }, t) });
  }
  configs.push({ id: 'main-only', run: (op, t) => runInMain(mainPool, s.callers, op, driver, t) });
  if (ceiling.tool !== null) {
    configs.push({
      id: 'ceiling',
      run: async (op, t) => {
        const a = systemCpu();
        const oa = foreignTicks();
        const t0 = performance.now();
        const r = await ceiling.run(op, t.measure);
        const seconds = (performance.now() - t0) / 1000;
        const b = systemCpu();
        const sysCpu = a && b && b.total > a.total ? ((b.busy - a.busy) / (b.total - a.total)) * CORES : null;
        return { ...r, mainElu: null, workerElu: null, procCpu: null, sysCpu, otherCpu: foreignCores(oa, foreignTicks(), seconds) };
      },
    });
  }
  const selected = s.configs === undefined ? configs : configs.filter((c) => s.configs.includes(c.id));
  const brokeredIds = selected.map((c) => c.id).filter((id) => id.startsWith('brokered-'));
  const out = { serverVersion, ceilingTool: ceiling.tool, ceilingSkipped: ceiling.reason, workloads: {} };
  try {
    // Prime: start every thread, open connections, let the JIT see every path once (discarded).
    for (const c of selected.filter((x) => x.id !== 'ceiling')) {
      for (const w of s.workloads) await c.run(w, { warmup: 0.05, measure: 0.1, prime: true });
    }
    for (const w of s.workloads) {
      const rounds = [];
      for (let r = 0; r < s.rounds; r++) {
        // A B A B: every configuration once per round; the order reverses every other round so
        // a slow drift of the machine favours no configuration.
        const order = r % 2 === 0 ? selected : [...selected].reverse();
        const round = {};
        for (const c of order) round[c.id] = await measureCell(c, w, s);
        rounds.push(round);
        log(`  ${driver} ${WORKLOAD_TITLES[w]} round ${r + 1}/${s.rounds}: ` +
          selected.map((c) => `${c.id} ${Math.round(round[c.id].throughput)}/s`).join(', '));
      }
      out.workloads[w] = summarize(rounds, selected.map((c) => c.id), brokeredIds);
      printCell(driver, w, out.workloads[w], brokeredIds);
    }

    const n0 = s.workers[0];
    const hopTiming = { warmup: s.hopWarmup, measure: s.hopMeasure };
    if (s.hop && brokered.has(n0)) {
      // Concurrency 1: one caller in one worker, through the broker vs. the worker's own pool.
      out.hop = {};
      for (const w of s.workloads) {
        const rounds = [];
        for (let r = 0; r < s.hopRounds; r++) {
          const a = () => quiet(() => runOnPool(brokered.get(n0), 1, 1, baseTask(w), hopTiming), s, `hop brokered ${w}`);
          const b = () => quiet(() => runOnPool(direct.get(n0), 1, 1, { ...baseTask(w), size: s.max / n0 }, hopTiming), s, `hop direct ${w}`);
          const round = {};
          if (r % 2 === 0) {
            round.brokered = await a();
            round.direct = await b();
          } else {
            round.direct = await b();
            round.brokered = await a();
          }
          rounds.push(round);
        }
        const med = (k, f) => median(rounds.map((x) => x[k][f]));
        out.hop[w] = {
          brokeredP50: med('brokered', 'p50'), directP50: med('direct', 'p50'),
          brokeredP99: med('brokered', 'p99'), directP99: med('direct', 'p99'),
          addedP50: median(rounds.map((x) => x.brokered.p50 - x.direct.p50)),
          addedP99: median(rounds.map((x) => x.brokered.p99 - x.direct.p99)),
          brokeredThroughput: med('brokered', 'throughput'), directThroughput: med('direct', 'throughput'),
          errors: rounds.reduce((a, x) => a + x.brokered.errors + x.direct.errors, 0),
          rounds,
        };
      }
    }
    if (s.reserve && brokered.has(n0)) {
      // Reserve + release at concurrency 1, and reserve + SELECT 1 + release against a plain SELECT 1.
      const ops = ['select1', 'reserve', 'reserve-select1'];
      const rounds = [];
      for (let r = 0; r < s.hopRounds; r++) {
        const round = {};
        for (const op of r % 2 === 0 ? ops : [...ops].reverse()) {
          round[op] = await quiet(() => runOnPool(brokered.get(n0), 1, 1, baseTask(op), hopTiming), s, `reserve ${op}`);
        }
        rounds.push(round);
      }
      const med = (op, f) => median(rounds.map((x) => x[op][f]));
      out.reserve = {
        reserveReleaseP50: med('reserve', 'p50'), reserveReleaseP99: med('reserve', 'p99'),
        reserveReleasePerSecond: med('reserve', 'throughput'),
        reserveSelect1ReleaseP50: med('reserve-select1', 'p50'), reserveSelect1ReleaseP99: med('reserve-select1', 'p99'),
        select1P50: med('select1', 'p50'), select1P99: med('select1', 'p99'),
        addedOverSelect1P50: median(rounds.map((x) => x['reserve-select1'].p50 - x.select1.p50)),
        errors: rounds.reduce((a, x) => a + ops.reduce((b, op) => b + x[op].errors, 0), 0),
        rounds,
      };
    }
    out.brokerStats = broker.stats().databases.db;
    memory.retainedAfterRuns = memorySample(true); // broker still open, all threads and pools still up
    if (profiles.length > 0) out.profiles = profiles;
  } finally {
    for (const [n, p] of brokered) await closePiscina(p, n, false);
    for (const [n, p] of direct) await closePiscina(p, n, true);
    await mainPool.end().catch(() => undefined);
    await broker.close();
    ceiling.close();
    const conn = await sampler.stop();
    out.connections = {
      max: s.max, serverPeak: conn.peak, samples: conn.samples, sampleErrors: conn.sampleErrors, sampler: sampler.error?.message,
      // Sessions of the same login and application from other processes (another run or a test), not counted above.
      otherProcessesPeak: conn.othersPeak,
    };
    memory.brokeredPeak = memPeak;
    out.memory = memory;
  }
  log(`  ${driver}: server-side broker sessions peak ${out.connections.serverPeak} (max ${s.max}, ${out.connections.samples} samples)`);
  return out;
}

// ---------------------------------------------------------------------------------------------

function gitCommit() {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: here, env: { ...process.env, GIT_OPTIONAL_LOCKS: '0' }, stdio: ['ignore', 'pipe', 'ignore'] })
      .toString().trim();
  } catch {
    return null;
  }
}

/** Re-renders an earlier run's report from its JSON. */
function rerender(file) {
  const result = JSON.parse(readFileSync(file, 'utf8'));
  printSummary(result);
  const dir = dirname(resolve(file));
  const name = basename(file);
  writeFileSync(join(dir, `${result.mode}-latest.svg`), chartSvg(result));
  writeFileSync(join(dir, `${result.mode}-latest.md`), markdownReport(result, name));
  log(`\nwrote ${join(dir, `${result.mode}-latest.svg`)}\n      ${join(dir, `${result.mode}-latest.md`)}`);
  if (result.mode === 'full' && dir === join(here, 'results')) updateReadme(markdownReport(result, `results/${name}`, `results/${result.mode}-latest.svg`));
}

/** Whether src/ differs from HEAD (read-only: no index refresh), and a hash of the built dist/src that was measured. */
function buildIdentity() {
  let srcDirty = null;
  try {
    execFileSync('git', ['diff', '--quiet', 'HEAD', '--', 'src'], { cwd: join(here, '..'), env: { ...process.env, GIT_OPTIONAL_LOCKS: '0' }, stdio: 'ignore' });
    srcDirty = false;
  } catch (err) {
    if (err.status === 1) srcDirty = true;
  }
  let distHash = null;
  try {
    const root = join(here, '..', 'dist', 'src');
    const h = createHash('sha256');
    const walk = (dir) => {
      for (const e of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
        const f = join(dir, e.name);
        if (e.isDirectory()) walk(f);
        else if (e.name.endsWith('.js')) h.update(f.slice(root.length)).update(readFileSync(f));
      }
    };
    walk(root);
    distHash = h.digest('hex').slice(0, 16);
  } catch {
    /* no dist */
  }
  return { srcDirty, distHash };
}

async function main() {
  const argv = process.argv.slice(2);
  const r = argv.findIndex((a) => a === '--report' || a.startsWith('--report='));
  if (r >= 0) {
    rerender(argv[r].includes('=') ? argv[r].slice('--report='.length) : argv[r + 1]);
    return;
  }
  const s = parseArgs(argv);
  const started = Date.now();
  const result = {
    version: 1,
    mode: s.mode,
    startedAt: new Date(started).toISOString(),
    environment: {
      node: process.version,
      platform: `${os.type()} ${os.release()} ${os.arch()}`,
      cpus: os.cpus().length,
      cpuModel: os.cpus()[0]?.model ?? null,
      loadavgBefore: os.loadavg(),
      commit: gitCommit(),
      ...buildIdentity(),
    },
    settings: {
      rounds: s.rounds, warmupSeconds: s.warmup, measureSeconds: s.measure, hopRounds: s.hopRounds,
      hopMeasureSeconds: s.hopMeasure, callers: s.callers, max: s.max, workers: s.workers, workloads: s.workloads,
      drivers: s.drivers, configs: s.configs ?? null, maxOtherCores: Number.isFinite(s.maxOther) ? s.maxOther : null, retries: s.retries,
    },
    drivers: {},
  };
  log(`threadbroker bench (${s.mode}): ${s.drivers.join(', ')} × ${s.workloads.join(', ')}; workers ${s.workers.join(', ')}; ` +
    `${s.callers} callers, max ${s.max}; ${s.rounds} rounds × (${s.warmup}s warm-up + ${s.measure}s)`);
  if (s.cpuProf !== undefined) mkdirSync(s.cpuProf, { recursive: true });
  for (const d of s.drivers) result.drivers[d] = await runDriver(d, s);
  result.environment.loadavgAfter = os.loadavg();
  result.durationSeconds = (Date.now() - started) / 1000;
  printSummary(result);
  for (const d of Object.values(result.drivers)) {
    for (const p of d.profiles ?? []) console.log('\n' + formatSelfTime(`main thread, ${p.config} ${p.op} (${p.file})`, p));
  }
  if (s.write) {
    mkdirSync(s.out, { recursive: true });
    const stamp = result.startedAt.replace(/[:]/g, '-').replace(/\..*$/, '');
    const base = s.mode === 'full' ? `full-${stamp}` : `${s.mode}-latest`;
    const jsonFile = join(s.out, `${base}.json`);
    writeFileSync(jsonFile, JSON.stringify(result, null, 1) + '\n');
    const svgFile = join(s.out, `${s.mode}-latest.svg`);
    writeFileSync(svgFile, chartSvg(result));
    const mdFile = join(s.out, `${s.mode}-latest.md`);
    writeFileSync(mdFile, markdownReport(result, `${base}.json`));
    log(`\nwrote ${jsonFile}\n      ${svgFile}\n      ${mdFile}`);
    if (s.readme) updateReadme(markdownReport(result, `results/${base}.json`, `results/${s.mode}-latest.svg`));
  }
  log(`done in ${result.durationSeconds.toFixed(0)} s`);
}

const START = '<!-- bench:results:start -->';
const END = '<!-- bench:results:end -->';
function updateReadme(md) {
  const file = join(here, 'README.md');
  if (!existsSync(file)) return;
  const text = readFileSync(file, 'utf8');
  const a = text.indexOf(START);
  const b = text.indexOf(END);
  if (a < 0 || b < a) return;
  writeFileSync(file, text.slice(0, a + START.length) + '\n' + md + '\n' + text.slice(b));
  log(`      ${file} (results section)`);
}

// A stuck server or thread must not hang the run: everything above is bounded, and this is the backstop.
main().then(
  () => {
    setTimeout(() => {
      console.error('bench: handles still open 15 s after the end; exiting');
      process.exit(0);
    }, 15_000).unref();
  },
  (err) => {
    console.error(err);
    process.exitCode = 1;
    setTimeout(() => process.exit(1), 5_000).unref();
  },
);
