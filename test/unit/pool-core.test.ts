/**
 * The pool on its own, over a scripted driver (HikariCP's stub-driver method): the cap counted
 * at the driver (connects in flight included), deadline precision, the queue limit, FIFO, reset
 * on return, eviction, dropping a dead thread's waits, and close() leaving nothing behind.
 * Every interleaving is driven by the script (deferred connects, statements and ends).
 */
import { describe, expect, it, vi } from 'vitest';
import type { Driver, DriverConnection, RawResult } from '../../src/drivers/driver.js';
import { BrokerError, Errors } from '../../src/errors.js';
import { Pool } from '../../src/pool/pool.js';
import { ScriptedDialect, poolConfig } from '../helpers/pool-fakes.js';

interface Deferred<T> {
  promise: Promise<T>;
  resolve: (v: T) => void;
  reject: (e: Error) => void;
}

function deferred<T = void>(): Deferred<T> {
  let resolve!: (v: T) => void;
  let reject!: (e: Error) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Lets every pending promise callback run (a macrotask turn). */
const settle = (): Promise<void> => new Promise((r) => setImmediate(r));

class FakeConn implements DriverConnection {
  readonly seq: number;
  readonly serverId: number;
  broken = false;
  inTx = false;
  resets = 0;
  ended = false;
  destroyed = false;
  /** Statements named 'hold' wait here until the script resolves them. */
  held: Deferred<RawResult> | undefined;
  #listener: ((err: Error) => void) | undefined;
  readonly #driver: FakeDriver;

  constructor(seq: number, driver: FakeDriver) {
    this.seq = seq;
    this.serverId = 1000 + seq;
    this.#driver = driver;
  }

  query(sql: string, params: readonly unknown[] | undefined): Promise<RawResult> {
    if (this.broken) return Promise.reject(Errors.connectionLost('db', 'broken'));
    if (sql === 'begin') this.inTx = true;
    if (sql === 'hold') {
      this.held = deferred<RawResult>();
      return this.held.promise;
    }
    return Promise.resolve({ fields: ['v', 'conn'], rows: [[params?.[0] ?? null, this.seq]], rowCount: 1 });
  }

  needsReset(): boolean {
    return this.inTx;
  }

  async reset(): Promise<void> {
    this.resets++;
    this.inTx = false;
  }

  onBroken(listener: (err: Error) => void): void {
    this.#listener = listener;
  }

  /** The server killed the session. */
  kill(): void {
    this.broken = true;
    this.held?.reject(Errors.connectionLost('db', 'killed'));
    const l = this.#listener;
    this.#listener = undefined;
    l?.(new Error('killed'));
  }

  end(): Promise<void> {
    this.broken = true;
    this.ended = true;
    return this.#driver.endGate === undefined ? Promise.resolve().then(() => this.#driver.gone(this)) : this.#driver.endGate.promise.then(() => this.#driver.gone(this));
  }

  destroy(): void {
    this.broken = true;
    this.destroyed = true;
    this.held?.reject(Errors.connectionLost('db', 'destroyed'));
    this.#driver.gone(this);
  }
}

/** Counts sessions like a server would: from connect start to end/destroy. */
class FakeDriver extends ScriptedDialect implements Driver {
  readonly kind = 'pg' as const;
  conns: FakeConn[] = [];
  /** Sessions open or being opened right now, and the most ever seen. */
  sessions = 0;
  peak = 0;
  connects = 0;
  /** When set, connects wait for it. */
  connectGate: Deferred<void> | undefined;
  /** When set, ends wait for it. */
  endGate: Deferred<void> | undefined;
  failNext = 0;
  readonly #gone = new Set<FakeConn>();

  async connect(seq: number): Promise<DriverConnection> {
    this.connects++;
    this.sessions++;
    this.peak = Math.max(this.peak, this.sessions);
    if (this.connectGate) await this.connectGate.promise;
    if (this.failNext > 0) {
      this.failNext--;
      this.sessions--;
      throw Errors.connectionLost('db', 'refused');
    }
    const c = new FakeConn(seq, this);
    this.conns.push(c);
    return c;
  }

  gone(c: FakeConn): void {
    if (this.#gone.has(c)) return;
    this.#gone.add(c);
    this.sessions--;
  }

}

const config = poolConfig;

async function codeOf(p: Promise<unknown>): Promise<string> {
  return p.then(() => 'ok', (e: unknown) => (e instanceof BrokerError ? e.code : `not a BrokerError: ${String(e)}`));
}

describe('pool over a scripted driver', () => {
  it('never has more than max sessions, connects in flight included, whatever the interleaving', async () => {
    // A deterministic pseudo-random schedule of acquires, releases, kills and slow connects.
    let seed = 42;
    const rnd = (n: number): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const driver = new FakeDriver();
    const pool = new Pool(config({ max: 3, acquireTimeoutMillis: 5_000 }), driver);
    const held: DriverConnection[] = [];
    const pending: Promise<void>[] = [];
    for (let step = 0; step < 2_000; step++) {
      const op = rnd(10);
      if (op < 4) {
        pending.push(pool.acquire().then((c) => void held.push(c), () => undefined));
      } else if (op < 8 && held.length > 0) {
        const c = held.splice(rnd(held.length), 1)[0] as FakeConn;
        if (rnd(4) === 0) c.inTx = true;
        pool.release(c);
      } else if (op === 8 && driver.conns.length > 0) {
        driver.conns[rnd(driver.conns.length)].kill();
      } else if (op === 9) {
        await settle();
      }
      expect(pool.stats().open + pool.stats().connecting).toBeLessThanOrEqual(3);
      expect(driver.sessions).toBeLessThanOrEqual(3);
    }
    // Drain: give everything back until no one waits.
    for (let i = 0; i < 10_000 && (held.length > 0 || pool.stats().waiting > 0 || pool.stats().connecting > 0); i++) {
      for (const c of held.splice(0)) pool.release(c);
      await settle();
    }
    await Promise.all(pending);
    expect(driver.peak).toBeLessThanOrEqual(3);
    expect(pool.stats()).toMatchObject({ busy: 0, waiting: 0, connecting: 0 });
    await pool.close(100);
    expect(driver.sessions).toBe(0);
  });

  it('ACQUIRE_TIMEOUT never fires before its deadline (Node timers run on a millisecond clock)', async () => {
    const pool = new Pool(config({ max: 1 }), new FakeDriver());
    const hold = await pool.acquire();
    let early = 0;
    let worst = Infinity;
    for (let i = 0; i < 150; i++) {
      const T = 2 + (i % 5);
      const t0 = performance.now();
      const code = await codeOf(pool.acquire(T));
      const took = performance.now() - t0;
      expect(code).toBe('ACQUIRE_TIMEOUT');
      if (took < T) early++;
      worst = Math.min(worst, took - T);
    }
    expect({ early, worst: worst >= 0 ? 'never early' : `${worst.toFixed(3)} ms early` }).toEqual({ early: 0, worst: 'never early' });
    pool.release(hold);
    await pool.close(100);
  });

  it('queueLimit counts only requests that wait for a release; queueLimit 0 still opens connections', async () => {
    const driver = new FakeDriver();
    const pool = new Pool(config({ max: 2, queueLimit: 0 }), driver);
    const a = pool.acquire();
    const b = pool.acquire();
    const c = pool.acquire();
    expect(await codeOf(c)).toBe('QUEUE_FULL');
    const [ca, cb] = await Promise.all([a, b]);
    expect(driver.connects).toBe(2);
    expect(await codeOf(pool.acquire())).toBe('QUEUE_FULL');
    pool.release(ca);
    pool.release(cb);
    await pool.close(100);

    const pool2 = new Pool(config({ max: 1, queueLimit: 2 }), new FakeDriver());
    const first = pool2.acquire();
    const w1 = pool2.acquire();
    const w2 = pool2.acquire();
    expect(await codeOf(pool2.acquire())).toBe('QUEUE_FULL');
    expect(pool2.queueFull).toBe(1);
    pool2.release(await first);
    pool2.release(await w1);
    pool2.release(await w2);
    await pool2.close(100);
  });

  it('waiting counts live waiters only: a timed-out waiter behind a live one is not counted', async () => {
    const pool = new Pool(config({ max: 1, queueLimit: 2 }), new FakeDriver());
    const hold = await pool.acquire();
    const a = pool.acquire(10_000);
    const b = pool.acquire(5);
    expect(pool.stats().waiting).toBe(2);
    expect(await codeOf(b)).toBe('ACQUIRE_TIMEOUT');
    expect(pool.stats().waiting).toBe(1);
    // The freed place in the queue is usable.
    const c = pool.acquire(10_000);
    expect(pool.stats().waiting).toBe(2);
    pool.release(hold);
    pool.release(await a);
    pool.release(await c);
    expect(pool.stats()).toMatchObject({ waiting: 0, busy: 0 });
    await pool.close(100);
  });

  it('grants in FIFO order and resets a connection (rollback) before the next holder gets it', async () => {
    const pool = new Pool(config({ max: 1 }), new FakeDriver());
    const first = (await pool.acquire()) as FakeConn;
    const order: number[] = [];
    const waits = Array.from({ length: 20 }, (_, i) => pool.acquire().then((c) => {
      order.push(i);
      expect((c as FakeConn).inTx).toBe(false);
      return c as FakeConn;
    }));
    first.inTx = true;
    pool.release(first);
    for (let i = 0; i < 20; i++) {
      const c = await waits[i];
      expect(c).toBe(first);
      c.inTx = i % 2 === 0;
      pool.release(c);
    }
    expect(order).toEqual(Array.from({ length: 20 }, (_, i) => i));
    expect(first.resets).toBe(11);
    await pool.close(100);
  });

  it('never hands out a connection past its lifetime, even before the sweeper ran', async () => {
    const driver = new FakeDriver();
    // A long lifetime: the sweeper runs every second, so it cannot be what retires it here.
    const pool = new Pool(config({ max: 1, maxLifetimeMillis: 60_000 }), driver);
    const c1 = await pool.acquire();
    pool.release(c1);
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      vi.setSystemTime(Date.now() + 61_000);
      const c2 = await pool.acquire();
      expect(c2).not.toBe(c1);
      expect((c1 as FakeConn).ended).toBe(true);
      pool.release(c2);
    } finally {
      vi.useRealTimers();
    }
    await pool.close(100);
    expect(driver.sessions).toBe(0);
  });

  it('evicts a connection killed while idle and opens a fresh one for the next request', async () => {
    const driver = new FakeDriver();
    const pool = new Pool(config({ max: 1 }), driver);
    const c1 = (await pool.acquire()) as FakeConn;
    pool.release(c1);
    c1.kill();
    expect(pool.stats().open).toBe(0);
    const c2 = await pool.acquire();
    expect(c2).not.toBe(c1);
    pool.release(c2);
    await pool.close(100);
    expect(driver.sessions).toBe(0);
  });

  it('abandon(owner) drops that owner\'s waits at once and keeps the others in order', async () => {
    const pool = new Pool(config({ max: 1 }), new FakeDriver());
    const hold = await pool.acquire();
    const dead = {};
    const live = {};
    const d1 = pool.acquire(10_000, dead);
    const l1 = pool.acquire(10_000, live);
    const d2 = pool.acquire(10_000, dead);
    const l2 = pool.query('select', [7], live);
    expect(pool.stats().waiting).toBe(4);
    expect(pool.abandon(dead)).toBe(2);
    expect(pool.stats().waiting).toBe(2);
    expect(await codeOf(d1)).toBe('THREAD_EXITED');
    expect(await codeOf(d2)).toBe('THREAD_EXITED');
    pool.release(hold);
    const c = await l1;
    pool.release(c);
    expect((await l2).rows).toEqual([[7, (c as FakeConn).seq]]);
    expect(pool.stats()).toMatchObject({ waiting: 0, busy: 0 });
    await pool.close(100);
  });

  it('close(): a statement cut after the grace fails with its own error, not INVALID_ARGUMENT', async () => {
    const driver = new FakeDriver();
    const pool = new Pool(config({ max: 1 }), driver);
    const stuck = pool.query('hold', undefined);
    await settle();
    const t0 = performance.now();
    await pool.close(50);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(45);
    expect(await codeOf(stuck)).toBe('CONNECTION_LOST');
    expect(driver.sessions).toBe(0);
  });

  it('close(): waits for connections ending and for connects in flight, within the grace', async () => {
    const driver = new FakeDriver();
    const pool = new Pool(config({ max: 2 }), driver);
    // One statement running, one connect in flight.
    const running = pool.query('hold', undefined);
    await settle();
    driver.connectGate = deferred();
    const waiting = pool.acquire();
    await settle();
    expect(pool.stats()).toMatchObject({ busy: 1, connecting: 1 });
    driver.endGate = deferred();
    let closed = false;
    const closing = pool.close(5_000).then(() => {
      closed = true;
    });
    expect(await codeOf(waiting)).toBe('BROKER_CLOSED');
    // The statement finishes, its connection is ended; the connect completes and is ended too.
    driver.conns[0].held!.resolve({ fields: [], rows: [], rowCount: 0 });
    driver.connectGate.resolve();
    expect(await codeOf(running)).toBe('ok');
    await settle();
    await settle();
    expect(closed).toBe(false); // both ends are still in progress
    expect(driver.sessions).toBe(2);
    driver.endGate.resolve();
    await closing;
    expect(driver.sessions).toBe(0);

    // An end that never completes does not hold close() past its grace.
    const d2 = new FakeDriver();
    const p2 = new Pool(config({ max: 1 }), d2);
    p2.release(await p2.acquire());
    d2.endGate = deferred();
    const t0 = performance.now();
    await p2.close(60);
    expect(performance.now() - t0).toBeLessThan(1_000);
  });

  it('keeps trying to connect while someone waits, and reports the last connect error on timeout', async () => {
    const driver = new FakeDriver();
    driver.failNext = 1_000;
    const pool = new Pool(config({ max: 1 }), driver);
    const err = await pool.acquire(120).then(() => undefined, (e: unknown) => e as BrokerError);
    expect(err?.code).toBe('ACQUIRE_TIMEOUT');
    expect(err?.message).toContain('last connect error');
    expect(driver.connects).toBeGreaterThan(1);
    driver.failNext = 0;
    const c = await pool.acquire(2_000);
    pool.release(c);
    await pool.close(100);
  });
});
