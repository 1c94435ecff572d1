/**
 * The floor under the hop's added latency at concurrency 1: how long one round trip between the
 * main thread and an idle worker takes with no database and no threadbroker code, three ways:
 *
 *   port     a MessagePort message each way (what the broker uses; both threads sleep in between)
 *   atomics  Atomics.notify each way on a SharedArrayBuffer word (the worker sleeps in Atomics.wait,
 *            the main thread in Atomics.waitAsync): a thread wake-up without the message machinery
 *   spin     the worker spins on the shared word instead of sleeping (a core burnt while idle);
 *            the main thread spins for the answer
 *
 * Round trips are 1 ms apart, so that both threads are asleep when one starts, as between the
 * statements of a single caller (the database's own time is added to that in the real hop).
 *
 *   node benchmarks/port-floor.mjs [round trips, default 5000]
 *
 * Everything is bounded: a fixed count of round trips, and every wait gives up after 10 s.
 */
import os from 'node:os';
import { Worker } from 'node:worker_threads';

const N = Number(process.argv[2] ?? 5000);

const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const flag = new Int32Array(workerData.sab);
const { mode, n } = workerData;
if (mode === 'port') {
  parentPort.on('message', (m) => { if (m === -1) process.exit(0); parentPort.postMessage(m); });
} else {
  const deadline = Date.now() + 10 * 60_000;
  for (let i = 0; i < n && Date.now() < deadline; i++) {
    for (let v = Atomics.load(flag, 0), k = 0; v !== 2 * i + 1 && k < 1e10; v = Atomics.load(flag, 0), k++) {
      if (mode === 'atomics') Atomics.wait(flag, 0, v, 10_000);
    }
    Atomics.store(flag, 0, 2 * i + 2);
    if (mode === 'atomics') Atomics.notify(flag, 0);
  }
}
`;

const pause = () => new Promise((r) => setTimeout(r, 1));

function quantiles(samples) {
  const s = Float64Array.from(samples).sort();
  const at = (q) => s[Math.min(s.length - 1, Math.floor(q * s.length))];
  return { p50: at(0.5), p99: at(0.99) };
}

async function measure(mode) {
  const sab = new SharedArrayBuffer(4);
  const flag = new Int32Array(sab);
  const w = new Worker(WORKER, { eval: true, workerData: { sab, mode, n: N } });
  await new Promise((r) => w.once('online', r));
  const times = [];
  for (let i = 0; i < N; i++) {
    await pause();
    const t = performance.now();
    if (mode === 'port') {
      await new Promise((resolve) => {
        w.once('message', resolve);
        w.postMessage(i);
      });
    } else {
      Atomics.store(flag, 0, 2 * i + 1);
      if (mode === 'atomics') {
        Atomics.notify(flag, 0);
        for (let k = 0; Atomics.load(flag, 0) !== 2 * i + 2 && k < 1e6; k++) await Atomics.waitAsync(flag, 0, 2 * i + 1, 10_000).value;
      } else {
        for (let k = 0; Atomics.load(flag, 0) !== 2 * i + 2 && k < 1e10; k++);
      }
    }
    times.push((performance.now() - t) * 1000);
  }
  if (mode === 'port') w.postMessage(-1);
  await new Promise((r) => w.once('exit', r));
  return quantiles(times);
}

const cpus = os.cpus();
console.log(`${N} round trips, 1 ms apart, between the main thread and one worker; Node ${process.version}, ${cpus.length} × ${cpus[0]?.model ?? 'cpu'}, load ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
for (const mode of ['port', 'atomics', 'spin']) {
  const q = await measure(mode);
  console.log(`${mode.padEnd(8)} p50 ${q.p50.toFixed(1).padStart(7)} µs   p99 ${q.p99.toFixed(1).padStart(7)} µs`);
}
