#!/usr/bin/env node
/**
 * Reservations from worker threads (issue 3, "Performance"): `reserve()` + `release()` from a
 * worker, uncontended and with 8 threads contending for the slots, beside a plain MessagePort
 * round trip to the main thread measured in the same run, on the same machine, at the same time.
 *
 *   npm run build && node benchmarks/reserve.mjs [--seconds 2] [--threads 8]
 *
 * No statement is run, so no connection is ever bound and the database is never touched: this
 * measures the slot table (the lock-free claim), the announcement and the release round trip.
 * Not part of `npm test`.
 */
import { performance } from 'node:perf_hooks';
import { isMainThread, MessageChannel, parentPort, threadId, workerData } from 'node:worker_threads';

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
if (args.includes('--help')) {
  console.log('node benchmarks/reserve.mjs [--seconds S (per measurement, default 2)] [--threads N (contended, default 8)]');
  process.exit(0);
}

/** Durations in µs, kept in a preallocated array (no allocation while measuring). */
class Samples {
  constructor(cap = 500_000) {
    this.v = new Float64Array(cap);
    this.n = 0;
  }
  add(us) {
    if (this.n < this.v.length) this.v[this.n++] = us;
  }
  values() {
    return this.v.subarray(0, this.n);
  }
}

function summarize(all, seconds) {
  const v = Float64Array.from(all).sort();
  const pct = (p) => (v.length === 0 ? NaN : v[Math.min(v.length - 1, Math.floor(p * v.length))]);
  const mean = v.reduce((a, b) => a + b, 0) / (v.length || 1);
  return { n: v.length, perSecond: v.length / seconds, p50: pct(0.5), p99: pct(0.99), mean };
}

// ---------------------------------------------------------------------------------------------
// Worker side: runs one measurement when told, reports its raw samples.

async function workerMain() {
  const { connect } = await import('threadbroker/worker');
  const db = await connect();
  const { echo, start } = workerData;
  const go = new Int32Array(start);

  /** A plain MessagePort round trip: post, wait for the echo. */
  const roundTrip = () => new Promise((resolve) => {
    echo.once('message', resolve);
    echo.postMessage(0);
  });

  async function run({ kind, seconds, round }) {
    // Start together with the other threads of this round (bounded wait).
    while (Atomics.load(go, 0) < round) await Atomics.waitAsync(go, 0, Atomics.load(go, 0), 50).value;
    const total = new Samples();
    const reserveOnly = new Samples();
    const warmUntil = performance.now() + 200;
    const until = warmUntil + seconds * 1000;
    for (let i = 0; ; i++) {
      const t0 = performance.now();
      if (t0 >= until) break;
      if (kind === 'port') {
        await roundTrip();
        const t1 = performance.now();
        if (t0 >= warmUntil) total.add((t1 - t0) * 1000);
      } else {
        const r = await db.reserve('db', { waitMillis: 10_000 });
        const t1 = performance.now();
        await r.release();
        const t2 = performance.now();
        if (t0 >= warmUntil) {
          reserveOnly.add((t1 - t0) * 1000);
          total.add((t2 - t0) * 1000);
        }
      }
    }
    return { threadId, total: total.values().slice(), reserveOnly: reserveOnly.values().slice() };
  }

  parentPort.on('message', (cmd) => {
    if (cmd === 'exit') {
      parentPort.close();
      echo.close();
      db.close();
      return;
    }
    run(cmd).then((res) => parentPort.postMessage(res, [res.total.buffer, res.reserveOnly.buffer]));
  });
  parentPort.postMessage('ready');
}

// ---------------------------------------------------------------------------------------------
// Main side: the broker, an echo per worker, the rounds, the table.

async function main() {
  const { Broker } = await import('threadbroker');
  const seconds = opt('seconds', 2);
  const threads = opt('threads', 8);
  // max 4: 3 reservation slots. No statement runs, so this URL is never connected to.
  const broker = await Broker.start({ databases: { db: { driver: 'pg', url: 'postgres://postgres@127.0.0.1:5432/test', max: 4 } } });
  const start = new SharedArrayBuffer(4);
  const go = new Int32Array(start);
  const workers = [];
  for (let i = 0; i < threads; i++) {
    const { port1, port2 } = new MessageChannel();
    port1.on('message', (m) => port1.postMessage(m)); // the plain round trip's other end, on the main thread
    const w = broker.worker(new URL(import.meta.url), { workerData: { echo: port2, start }, transferList: [port2] });
    await new Promise((resolve, reject) => {
      w.once('message', resolve);
      w.once('error', reject);
    });
    workers.push({ w, port1 });
  }

  let round = 0;
  async function measure(kind, n) {
    round++;
    const replies = workers.slice(0, n).map(({ w }) => new Promise((resolve) => w.once('message', resolve)));
    for (const { w } of workers.slice(0, n)) w.postMessage({ kind, seconds, round });
    Atomics.store(go, 0, round);
    Atomics.notify(go, 0);
    const out = await Promise.all(replies);
    return {
      total: summarize(out.flatMap((o) => Array.from(o.total)), seconds),
      reserveOnly: summarize(out.flatMap((o) => Array.from(o.reserveOnly)), seconds),
    };
  }

  const rows = [];
  const port1 = await measure('port', 1);
  rows.push(['MessagePort round trip', '1', port1.total]);
  const rsv1 = await measure('reserve', 1);
  rows.push(['reserve() alone', '1', rsv1.reserveOnly]);
  rows.push(['reserve() + release()', '1', rsv1.total]);
  const portN = await measure('port', threads);
  rows.push(['MessagePort round trip', String(threads), portN.total]);
  const rsvN = await measure('reserve', threads);
  rows.push(['reserve() alone', `${threads} (3 slots)`, rsvN.reserveOnly]);
  rows.push(['reserve() + release()', `${threads} (3 slots)`, rsvN.total]);

  const fmt = (x) => (x < 100 ? x.toFixed(1) : Math.round(x).toLocaleString('en-US'));
  const header = ['operation, from a worker', 'threads', 'ops/s (all threads)', 'p50 µs', 'p99 µs', 'mean µs'];
  const body = rows.map(([name, t, s]) => [name, t, Math.round(s.perSecond).toLocaleString('en-US'), fmt(s.p50), fmt(s.p99), fmt(s.mean)]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((r) => r[i].length)));
  const line = (r) => r.map((c, i) => (i < 2 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  console.log(`node ${process.version}, ${seconds} s per measurement after 0.2 s warm-up, ${threads} threads contended for 3 slots\n`);
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of body) console.log(line(r));
  console.log(`\nuncontended reserve(): ${(rsv1.reserveOnly.p50 / port1.total.p50).toFixed(2)}× a port round trip (p50); reserve()+release(): ${(rsv1.total.p50 / port1.total.p50).toFixed(2)}×`);
  console.log(`contended reserve()+release(): ${(rsvN.total.p50 / portN.total.p50).toFixed(2)}× a port round trip under the same thread count (p50)`);

  for (const { w, port1: p } of workers) {
    w.postMessage('exit');
    p.close();
  }
  await Promise.all(workers.map(({ w }) => new Promise((r) => w.once('exit', r))));
  await broker.close();
}

if (isMainThread) await main();
else await workerMain();
