/**
 * A fixed-size latency histogram in microseconds that merges across threads by adding counts.
 * Buckets: 0.1 µs wide below 100 µs, then 0.5% wide up to ~10 s. A histogram is plain data
 * (a Uint32Array plus a few numbers), so a worker returns it through piscina's structured clone.
 */

const LINEAR = 1000; // 0.1 µs buckets below 100 µs
const LINEAR_LIMIT = 100; // µs
const GROWTH = 1.005;
const LOG_GROWTH = Math.log(GROWTH);
const LOG_BUCKETS = Math.ceil(Math.log(1e7 / LINEAR_LIMIT) / LOG_GROWTH); // up to 10 s
export const BUCKETS = LINEAR + LOG_BUCKETS + 1;

/** @returns {{ counts: Uint32Array, n: number, sum: number, min: number, max: number }} */
export function newHistogram() {
  return { counts: new Uint32Array(BUCKETS), n: 0, sum: 0, min: Infinity, max: 0 };
}

function indexOf(us) {
  if (!(us > 0)) return 0;
  if (us < LINEAR_LIMIT) return Math.floor(us * 10);
  const i = LINEAR + Math.floor(Math.log(us / LINEAR_LIMIT) / LOG_GROWTH);
  return i < BUCKETS ? i : BUCKETS - 1;
}

function valueOf(i) {
  if (i < LINEAR) return (i + 0.5) / 10;
  return LINEAR_LIMIT * Math.pow(GROWTH, i - LINEAR + 0.5);
}

/** Records one latency in microseconds. */
export function record(h, us) {
  h.counts[indexOf(us)]++;
  h.n++;
  h.sum += us;
  if (us < h.min) h.min = us;
  if (us > h.max) h.max = us;
}

/** Adds `b` into `a` (both plain histograms, possibly cloned from another thread). */
export function merge(a, b) {
  const ca = a.counts;
  const cb = b.counts;
  for (let i = 0; i < BUCKETS; i++) ca[i] += cb[i];
  a.n += b.n;
  a.sum += b.sum;
  if (b.min < a.min) a.min = b.min;
  if (b.max > a.max) a.max = b.max;
  return a;
}

/** The latency at quantile `q` (0..1) in microseconds, or null when empty. */
export function quantile(h, q) {
  if (h.n === 0) return null;
  const rank = Math.max(1, Math.ceil(q * h.n));
  let seen = 0;
  for (let i = 0; i < BUCKETS; i++) {
    seen += h.counts[i];
    if (seen >= rank) return Math.min(Math.max(valueOf(i), h.min), h.max);
  }
  return h.max;
}

/** p50, p99 and mean of a histogram, in microseconds. */
export function summary(h) {
  return {
    n: h.n,
    p50: quantile(h, 0.5),
    p99: quantile(h, 0.99),
    mean: h.n > 0 ? h.sum / h.n : null,
    max: h.n > 0 ? h.max : null,
  };
}
