/**
 * A fixed-bucket histogram of durations in milliseconds, cheap enough for the hot path
 * (one comparison loop over a dozen bounds, no allocation).
 * @module
 */

/** Upper bounds (ms) of the buckets, Prometheus style (`le`). */
export const BUCKETS_MILLIS: readonly number[] = Object.freeze([0.1, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000]);

/** Counts observations per bucket. */
export class Histogram {
  readonly counts = new Float64Array(BUCKETS_MILLIS.length + 1);
  sum = 0;
  count = 0;

  /** Records one duration. */
  observe(millis: number): void {
    let i = 0;
    while (i < BUCKETS_MILLIS.length && millis > BUCKETS_MILLIS[i]) i++;
    this.counts[i]++;
    this.sum += millis;
    this.count++;
  }
}
