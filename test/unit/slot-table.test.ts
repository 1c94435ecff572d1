/**
 * The shared slot table on its own: layout, the claim/retire/free cycle, generations (ABA), the
 * hand-over mark, commit rotation, fairness, deadlines, and exclusive claims under real threads.
 */
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import {
  DB_FIELDS, HEADER_FIELDS, SLOT_DEADLINE_OFFSET, SLOT_STRIDE, claimingState, dbBase, slotBase, tableBytes,
} from '../../src/slots/slot-layout.js';
import { CLAIMING, FREE, NEVER, RESERVED, RETIRING, SlotTable } from '../../src/slots/slot-table.js';

describe('slot layout', () => {
  it('keeps every deadline on an 8-byte boundary and sizes the buffer exactly', () => {
    const counts = [3, 0, 7, 1];
    expect(tableBytes(counts)).toBe((HEADER_FIELDS + counts.length * DB_FIELDS + 11 * SLOT_STRIDE) * 4);
    for (let db = 0; db < counts.length; db++) {
      expect(dbBase(counts, db) % 2).toBe(0);
      for (let slot = 0; slot < counts[db]; slot++) expect((slotBase(counts, db, slot) + SLOT_DEADLINE_OFFSET) % 2).toBe(0);
    }
  });

  it('refuses a buffer of the wrong size or of an unknown layout', () => {
    expect(() => new SlotTable([2], new SharedArrayBuffer(8))).toThrow(RangeError);
    expect(() => new SlotTable([2], new SharedArrayBuffer(tableBytes([2])))).toThrow(/unknown layout/);
    const t = new SlotTable([2]);
    const view = new SlotTable([2], t.buffer);
    expect(view.claim(0, 1, 0)).toEqual({ db: 0, slot: 0, gen: 0 });
    expect(t.state(0, 0)).toBe(RESERVED);
  });
});

describe('slot table', () => {
  it('grants each slot once, then nothing, and names its owner', () => {
    const t = new SlotTable([3, 1]);
    const claims = [t.claim(0, 11, 0), t.claim(0, 12, 0), t.claim(0, 13, 0)];
    expect(claims.map((c) => c?.slot)).toEqual([0, 1, 2]);
    expect(t.claim(0, 14, 0)).toBeUndefined();
    expect(t.claim(1, 15, 0)).toEqual({ db: 1, slot: 0, gen: 0 });
    expect(t.owner(0, 1)).toBe(12);
    expect(t.reservedCount(0)).toBe(3);
    expect(t.has(0, 3)).toBe(false);
    expect(t.has(-1, 0)).toBe(false);
    expect(t.has(0, 1.5)).toBe(false);
  });

  it('bumps the generation on every free, so a released claim is never live again (ABA)', () => {
    const t = new SlotTable([1]);
    const old: { db: number; slot: number; gen: number }[] = [];
    for (let i = 0; i < 1000; i++) {
      const c = t.claim(0, 1, 0)!;
      expect(c.gen).toBe(i);
      expect(t.isLive(c)).toBe(true);
      for (const o of old.slice(-5)) expect(t.isLive(o)).toBe(false);
      expect(t.retire(c)).toBe(true);
      expect(t.state(0, 0)).toBe(RETIRING);
      expect(t.isLive(c)).toBe(false);
      expect(t.retire(c)).toBe(false);
      t.free(0, 0);
      expect(t.state(0, 0)).toBe(FREE);
      old.push(c);
    }
    expect(old.every((c) => !t.isLive(c))).toBe(true);
  });

  it('hands a freed slot straight to a waiter, never through FREE', () => {
    const t = new SlotTable([1]);
    const c = t.claim(0, 1, 0)!;
    t.retire(c);
    const next = t.free(0, 0, { owner: 2, deadline: 123 })!;
    expect(next).toEqual({ db: 0, slot: 0, gen: 1 });
    expect(t.state(0, 0)).toBe(RESERVED);
    expect(t.owner(0, 0)).toBe(2);
    expect(t.deadline(0, 0)).toBe(123);
  });

  it('defers to queued waiters on the lock-free path (fairness) but not on the broker path', () => {
    const t = new SlotTable([2]);
    t.setWaiters(0, 1);
    expect(t.claim(0, 1, 0)).toBeUndefined();
    expect(t.claimFor(0, 1, 0)).toBeDefined();
    t.setWaiters(0, 0);
    expect(t.claim(0, 1, 0)).toBeDefined();
  });

  it('marks a hand-over for its own generation only', () => {
    const t = new SlotTable([1]);
    const c = t.claim(0, 1, 0)!;
    expect(t.handed(0, 0)).toBe(false);
    t.markHanded(c);
    expect(t.handed(0, 0)).toBe(true);
    t.retire(c);
    t.free(0, 0);
    const next = t.claim(0, 2, 0)!;
    expect(t.handed(0, 0)).toBe(false);
    // A late mark by the holder of the released claim must not mark the new one.
    t.markHanded(c);
    expect(t.handed(0, 0)).toBe(false);
    t.markHanded(next);
    expect(t.handed(0, 0)).toBe(true);
  });

  it('rotates a live claim to a new generation, keeping it held and its hand-over mark', () => {
    const t = new SlotTable([1]);
    const c = t.claim(0, 1, 0)!;
    expect(t.rotate({ ...c, gen: c.gen + 7 })).toBeUndefined();
    const g1 = t.rotate(c)!;
    expect(g1).toBe(c.gen + 1);
    expect(t.isLive(c)).toBe(false);
    expect(t.isLive({ ...c, gen: g1 })).toBe(true);
    expect(t.handed(0, 0)).toBe(false);
    t.markHanded({ ...c, gen: g1 });
    const g2 = t.rotate({ ...c, gen: g1 })!;
    expect(t.handed(0, 0)).toBe(true);
    expect(t.state(0, 0)).toBe(RESERVED);
    expect(t.isLive({ ...c, gen: g2 })).toBe(true);
  });

  it('wraps generations around int32 without ever matching an old claim', () => {
    const t = new SlotTable([1]);
    const view = new Int32Array(t.buffer);
    view[slotBase([1], 0, 0) + 1] = 0x7fffffff;
    const c = t.claim(0, 1, 0)!;
    expect(c.gen).toBe(0x7fffffff);
    t.retire(c);
    t.free(0, 0);
    const d = t.claim(0, 1, 0)!;
    expect(d.gen).toBe(-0x80000000);
    expect(t.isLive(c)).toBe(false);
    t.markHanded(d);
    expect(t.handed(0, 0)).toBe(true);
  });

  it('stores a lease that never ends (both times 0) as NEVER instead of throwing', () => {
    const t = new SlotTable([1]);
    expect(() => t.claim(0, 1, Infinity)).not.toThrow();
    expect(t.deadline(0, 0)).toBe(NEVER);
    t.setDeadline(0, 0, Infinity);
    expect(t.deadline(0, 0)).toBe(NEVER);
    const c = { db: 0, slot: 0, gen: 0 };
    t.retire(c);
    expect(() => t.free(0, 0, { owner: 2, deadline: Date.now() + Infinity })).not.toThrow();
    expect(t.state(0, 0)).toBe(RESERVED);
  });

  it('names the claimer in the CLAIMING state, so a claim abandoned mid-way can be freed by its owner\'s death', () => {
    const t = new SlotTable([2]);
    const view = new Int32Array(t.buffer);
    // Thread 42 won the first CAS and was killed before the second.
    view[slotBase([2], 0, 0)] = claimingState(42);
    expect(t.claimer(0, 0)).toBe(42);
    expect(t.claimer(0, 1)).toBeUndefined();
    expect(t.state(0, 0)).toBeLessThanOrEqual(CLAIMING);
    expect(t.claim(0, 7, 0)!.slot).toBe(1);
    expect(t.abandon(0, 0, 41)).toBe(false);
    expect(t.abandon(0, 0, 42)).toBe(true);
    expect(t.state(0, 0)).toBe(RETIRING);
    t.free(0, 0);
    expect(t.claim(0, 7, 0)).toEqual({ db: 0, slot: 0, gen: 1 });
    expect(claimingState(0)).not.toBe(RETIRING);
    expect([FREE, RESERVED, RETIRING]).not.toContain(claimingState(0));
  });

  it('stores the lease times a claimer asked for, and "default" otherwise', () => {
    const t = new SlotTable([3]);
    t.claim(0, 1, 0, true, { idleMillis: 250, maxMillis: 0 });
    t.claim(0, 1, 0, true, { idleMillis: NaN });
    t.claim(0, 1, 0);
    expect(t.leaseTimes(0, 0)).toEqual({ idleMillis: 250, maxMillis: 0 });
    expect(t.leaseTimes(0, 1)).toEqual({ idleMillis: NaN, maxMillis: NaN });
    expect(t.leaseTimes(0, 2)).toEqual({ idleMillis: NaN, maxMillis: NaN });
  });

  it('gives every claim a fresh 128-bit nonce (pooled CSPRNG bytes, never reused)', () => {
    const t = new SlotTable([1]);
    const seen = new Set<string>();
    for (let i = 0; i < 5000; i++) {
      const c = t.claim(0, 1, 0)!;
      seen.add(Buffer.from(t.nonce(0, 0)).toString('hex'));
      t.retire(c);
      t.free(0, 0);
    }
    expect(seen.size).toBe(5000);
  });

  it('never grants one slot to two threads at once (4 threads × 20,000 claims on 2 slots)', async () => {
    const t = new SlotTable([2]);
    const occupancy = new SharedArrayBuffer(8);
    const start = new SharedArrayBuffer(4);
    const hammer = new URL('../fixtures/workers/rsv-slot-hammer.mjs', import.meta.url);
    const workers = Array.from({ length: 4 }, () => new Worker(hammer, {
      workerData: { slots: t.buffer, slotCounts: [2], occupancy, start, iterations: 20_000 },
    }));
    const results = workers.map((w) => new Promise<{ granted: number; overlaps: number; staleLive: number }>((resolve, reject) => {
      w.once('message', resolve);
      w.once('error', reject);
    }));
    await Promise.all(workers.map((w) => new Promise((r) => w.once('online', r))));
    Atomics.store(new Int32Array(start), 0, 1);
    Atomics.notify(new Int32Array(start), 0);
    const out = await Promise.all(results);
    await Promise.all(workers.map((w) => w.terminate()));
    expect(out.reduce((n, r) => n + r.overlaps + r.staleLive, 0)).toBe(0);
    expect(out.reduce((n, r) => n + r.granted, 0)).toBeGreaterThan(0);
    expect(t.gen(0, 0) + t.gen(0, 1)).toBe(out.reduce((n, r) => n + r.granted, 0));
    expect(t.reservedCount(0)).toBe(0);
  });
});
