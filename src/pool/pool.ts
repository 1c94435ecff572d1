/**
 * One pool per database, owned by the main thread: connections opened on demand and never more
 * than `max` (counting connects in flight), FIFO waiters with a hard deadline and a queue limit,
 * idle timeout, max lifetime, eviction of broken connections, and a transaction check on every
 * return. We own the connections rather than wrap pg-pool/mysql2's pool so that the cap, the
 * deadlines and the reset-on-return hold the same way for both kinds.
 * @module
 */
import type { DatabaseConfig } from '../config/types.js';
import type { Driver, DriverConnection, ForwardStatement, RawResult } from '../drivers/driver.js';
import { BrokerError, Errors, type PoolState } from '../errors.js';
import { Histogram } from '../util/histogram.js';
import { Paces, type PipeStatement } from './pipeline.js';
import { WaiterQueue } from './waiter-queue.js';

interface Waiter {
  since: number;
  /** When ACQUIRE_TIMEOUT falls due (performance.now() clock). */
  deadline: number;
  resolve: (conn: DriverConnection) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout | undefined;
  done: boolean;
  /** Who asked (the broker passes the thread's peer), so a dead thread's waits can be dropped. */
  owner: object | undefined;
  /** Set for a forwarded statement. */
  pipe?: PipeStatement | undefined;
}

/** A shareable forwarded statement held for {@link Pool.forward}'s spreading. */
interface Arrival {
  pipe: PipeStatement;
  owner: object | undefined;
  deadline: number;
  reject: (err: Error) => void;
}

interface Meta {
  created: number;
  /** When the current checkout began (performance.now()). */
  checkedOut: number;
  expires: number;
  lastUsed: number;
}

/** The statistics of one pool. */
export interface PoolStats extends PoolState {
  /** Connections opened since the pool started (each counts once). */
  created: number;
  /** Connections being opened right now (they count toward `max`). */
  connecting: number;
}

/** The pool of one database. */
export class Pool {
  readonly name: string;
  /** Time spent waiting for a connection (only waits that queued). */
  readonly waitTime = new Histogram();
  /** Time a connection stayed checked out. */
  readonly holdTime = new Histogram();
  /** Requests refused with ACQUIRE_TIMEOUT / QUEUE_FULL. */
  timeouts = 0;
  queueFull = 0;
  readonly #config: DatabaseConfig;
  readonly #driver: Driver;
  readonly #idle: DriverConnection[] = [];
  readonly #busy = new Set<DriverConnection>();
  readonly #meta = new Map<DriverConnection, Meta>();
  // FIFO with a moving head: shift() on a long array is O(n).
  readonly #waiters = new WaiterQueue<Waiter>();
  /** The pace of each forwarded statement text, which decides who may join a pipeline. */
  readonly #paces = new Paces();
  /**
   * Shareable forwarded statements that found an idle connection in a full pool, held until the
   * current run of JavaScript ends (the rest of the thread's batch arrives in it) and then spread
   * over the idle connections: one socket write per connection rather than one per statement.
   */
  #arrivals: Arrival[] = [];
  /** Closes in progress (graceful ends), so close() can wait for them (no session outlives close). */
  readonly #ending = new Set<Promise<void>>();
  /** Connects in flight, so close() can wait for them and end what they open. */
  readonly #opening = new Set<Promise<void>>();
  #connecting = 0;
  #created = 0;
  #seq = 0;
  #closed = false;
  #closeStarted = false;
  #lastConnectError: string | undefined;
  #backoffMillis = 0;
  #retryTimer: NodeJS.Timeout | undefined;
  readonly #sweeper: NodeJS.Timeout | undefined;

  constructor(config: DatabaseConfig, driver: Driver) {
    this.name = config.name;
    this.#config = config;
    this.#driver = driver;
    const periods = [config.idleTimeoutMillis, config.maxLifetimeMillis].filter((m) => m > 0);
    if (periods.length > 0) {
      const every = Math.max(10, Math.min(1000, Math.floor(Math.min(...periods) / 2)));
      this.#sweeper = setInterval(() => this.#sweep(), every);
      this.#sweeper.unref();
    }
  }

  /** The driver the pool opens connections with. */
  get driver(): Driver {
    return this.#driver;
  }

  /** Live figures. */
  stats(): PoolStats {
    const waiting = this.#waiters.live;
    const idle = this.#idle.length;
    const busy = this.#busy.size;
    return { max: this.#config.max, open: idle + busy, idle, busy, waiting, created: this.#created, connecting: this.#connecting };
  }

  /**
   * Runs one statement on any free connection and returns the connection at once.
   * The hot path: no promise beyond the driver's when a connection is idle.
   */
  query(sql: string, params: readonly unknown[] | undefined, owner?: object): Promise<RawResult> {
    const conn = this.#takeIdle();
    if (conn !== undefined) return this.#runAndRelease(conn, sql, params);
    return this.acquire(this.#config.acquireTimeoutMillis, owner).then((c) => this.#runAndRelease(c, sql, params));
  }

  async #runAndRelease(conn: DriverConnection, sql: string, params: readonly unknown[] | undefined): Promise<RawResult> {
    try {
      return await conn.query(sql, params);
    } finally {
      this.release(conn);
    }
  }

  /**
   * Like `query`, for a statement the calling thread encoded (`DriverConnection.forward`):
   * resolves with the server's answer as bytes. On an idle connection it runs alone. When it must
   * wait and `shareable` (it cannot leave a transaction open), it may be granted the connection
   * together with the shareable statements queued right behind it (at most `pipelineDepth`),
   * which then run pipelined: one socket write for all, answers in order. FIFO order, the
   * deadline and the queue limit apply to each statement as to any waiter.
   */
  forward(stmt: ForwardStatement, owner?: object, shareable = false): Promise<Uint8Array> {
    const { sql, msg, params } = stmt;
    if (shareable && (this.#arrivals.length > 0 || this.#spreadable())) {
      return new Promise<Uint8Array>((resolve, reject) => {
        const pipe: PipeStatement = { sql, msg, params, shareable, settle: (p) => p.then(resolve, reject) };
        if (this.#arrivals.length === 0) queueMicrotask(() => this.#spread());
        this.#arrivals.push({ pipe, owner, deadline: performance.now() + this.#config.acquireTimeoutMillis, reject });
      });
    }
    const conn = this.#takeIdle();
    if (conn !== undefined) return this.#runForward(conn, [{ sql, msg, params, shareable, settle: () => undefined }])[0];
    return new Promise<Uint8Array>((resolve, reject) => {
      const pipe: PipeStatement = { sql, msg, params, shareable, settle: (p) => p.then(resolve, reject) };
      this.#enqueue(this.#config.acquireTimeoutMillis, owner, (c) => this.#runForward(c, [pipe]), reject, pipe);
    });
  }

  /**
   * Whether a shareable statement arriving now should wait for the end of the current run of
   * JavaScript to be spread with the others arriving in it: only when an idle connection would
   * take it, nobody waits, and every connection the pool may have is open (while connections can
   * still be opened, they serve a burst better than a pipeline). A statement that is not held
   * (one that may open a transaction, a plain query, an acquire) and arrives in the same run may
   * take an idle connection before the held ones: a reordering within one run, never a wait.
   */
  #spreadable(): boolean {
    return (
      this.#config.pipelineDepth > 1 &&
      this.#idle.length > 0 &&
      this.#waiters.live === 0 &&
      !this.#closed &&
      this.#idle.length + this.#busy.size + this.#connecting + this.#ending.size >= this.#config.max
    );
  }

  /**
   * Spreads the statements that arrived in one run of JavaScript over the idle connections, in
   * arrival order: each connection takes an equal share (at most `pipelineDepth`), in one socket
   * write. As for waiters, a statement joins only when, at the recent pace of the texts ahead of
   * it, its turn comes before its acquire deadline; what no idle connection takes waits in the
   * queue as any statement does.
   */
  #spread(): void {
    const list = this.#arrivals;
    this.#arrivals = [];
    let i = 0;
    while (i < list.length) {
      const idle = this.#idle.length;
      const conn = this.#takeIdle();
      if (conn === undefined) break;
      const share = Math.min(this.#config.pipelineDepth, Math.ceil((list.length - i) / idle));
      const first = list[i++].pipe;
      const group = this.#paces.group(first, share, performance.now(), () => list[i], () => i++);
      this.#runForward(conn, group);
    }
    for (; i < list.length; i++) {
      const { pipe, owner, reject } = list[i];
      this.#enqueue(this.#config.acquireTimeoutMillis, owner, (c) => this.#runForward(c, [pipe]), reject, pipe);
    }
  }

  /** Runs statements pipelined on `conn`, hands each its answer, and releases `conn` once all are in. */
  #runForward(conn: DriverConnection, stmts: readonly PipeStatement[]): Promise<Uint8Array>[] {
    const answers = conn.forward === undefined
      ? stmts.map(() => Promise.reject(new BrokerError('INVALID_ARGUMENT', `${this.name} does not forward statements`)))
      : conn.forward(stmts);
    this.#paces.track(stmts, answers);
    for (let i = 0; i < stmts.length; i++) stmts[i].settle(answers[i]);
    Promise.allSettled(answers).then(() => this.release(conn));
    return answers;
  }

  #takeIdle(): DriverConnection | undefined {
    if (this.#closed) return undefined;
    // Only take idle connections when nobody queues, so FIFO holds.
    if (this.#waiters.live > 0) return undefined;
    for (;;) {
      // LIFO: the most recently used connection is the warmest and the least likely to be dead.
      const conn = this.#idle.pop();
      if (conn === undefined) return undefined;
      if (conn.broken) {
        this.#forget(conn);
        continue;
      }
      const meta = this.#meta.get(conn);
      // Fix: a connection past its lifetime was still handed out until the next sweep (up to
      // half the lifetime or 1 s later). Never hand one out (HikariCP evicts on borrow too).
      if (meta !== undefined && meta.expires > 0 && Date.now() >= meta.expires) {
        this.#forget(conn);
        this.#end(conn);
        continue;
      }
      this.#busy.add(conn);
      if (meta) meta.checkedOut = performance.now();
      return conn;
    }
  }

  /**
   * Takes a connection exclusively (the caller must `release` it), waiting at most
   * `timeoutMillis` (`ACQUIRE_TIMEOUT`) in FIFO order, behind at most `queueLimit` others (`QUEUE_FULL`).
   */
  acquire(timeoutMillis: number = this.#config.acquireTimeoutMillis, owner?: object): Promise<DriverConnection> {
    if (this.#closed) return Promise.reject(Errors.brokerClosed());
    const conn = this.#takeIdle();
    if (conn !== undefined) return Promise.resolve(conn);
    return new Promise<DriverConnection>((resolve, reject) => this.#enqueue(timeoutMillis, owner, resolve, reject));
  }

  /**
   * Queues a waiter, or fails it at once with QUEUE_FULL. Fix: only requests that must wait for
   * another's release count against queueLimit; those a connection still to be opened will serve
   * do not. Before, `queueLimit: 0` refused every request of a fresh pool (nothing idle yet) with
   * QUEUE_FULL, so the pool could never open.
   */
  #enqueue(timeoutMillis: number, owner: object | undefined, resolve: (c: DriverConnection) => void, reject: (e: Error) => void, pipe?: PipeStatement): void {
    if (this.#closed) {
      reject(Errors.brokerClosed());
      return;
    }
    const room = this.#config.max - this.#idle.length - this.#busy.size;
    if (this.#waiters.live - Math.max(0, room) >= this.#config.queueLimit) {
      this.queueFull++;
      reject(Errors.queueFull(this.name, this.#config.queueLimit, this.stats()));
      return;
    }
    const since = performance.now();
    const waiter: Waiter = { since, deadline: since + timeoutMillis, resolve, reject, timer: undefined, done: false, owner, pipe };
    const expire = (): void => {
      if (waiter.done) return;
      // Fix: Node fires timers on a millisecond clock and may run one up to 1 ms before `timeoutMillis`
      // of real time passed; the contract is "never earlier than T", so wait out the remainder.
      const left = timeoutMillis - (performance.now() - waiter.since);
      if (left > 0) {
        waiter.timer = setTimeout(expire, Math.ceil(left));
        return;
      }
      this.#waiters.settle(waiter);
      this.timeouts++;
      const err = Errors.acquireTimeout(this.name, timeoutMillis, this.stats());
      if (this.#lastConnectError !== undefined) {
        err.message += `; last connect error: ${this.#lastConnectError}`;
      }
      reject(err);
    };
    waiter.timer = setTimeout(expire, timeoutMillis);
    this.#waiters.push(waiter);
    this.#grow();
  }

  /**
   * Drops every wait of `owner` (a thread that is gone): its requests can no longer be answered,
   * so they must neither hold their place in the FIFO nor run statements later for nobody.
   * Returns how many were dropped.
   */
  abandon(owner: object): number {
    const dropped = this.#waiters.removeWhere((w) => w.owner === owner);
    for (const w of dropped) w.reject(Errors.threadExited('the requesting thread is gone; its queued request was dropped'));
    return dropped.length;
  }

  /**
   * Gives a connection back. Broken ones are destroyed; one with an open transaction is rolled
   * back first; one past its lifetime is closed; otherwise the oldest waiter gets it.
   */
  release(conn: DriverConnection): void {
    if (!this.#busy.has(conn)) {
      // Fix: close() destroys connections still busy after its grace and forgets them; their
      // statements then fail and come back here. Throwing would replace the statement's own error
      // (CONNECTION_LOST) with INVALID_ARGUMENT.
      if (this.#closed) return;
      throw new BrokerError('INVALID_ARGUMENT', 'release called on a connection that is not checked out of this pool');
    }
    const meta = this.#meta.get(conn);
    if (meta) {
      meta.lastUsed = Date.now();
      this.holdTime.observe(performance.now() - meta.checkedOut);
    }
    if (conn.broken || this.#closed) {
      this.#busy.delete(conn);
      this.#discard(conn);
      return;
    }
    if (conn.needsReset()) {
      // Still counted busy while the rollback runs, so the cap holds.
      conn.reset().then(
        () => this.#handBack(conn),
        () => {
          conn.destroy();
          this.#handBack(conn);
        },
      );
      return;
    }
    this.#handBack(conn);
  }

  /** Destroys a checked-out connection instead of returning it (its state is unknown). */
  destroy(conn: DriverConnection): void {
    if (!this.#busy.delete(conn)) return;
    conn.destroy();
    this.#discard(conn);
  }

  #handBack(conn: DriverConnection): void {
    const meta = this.#meta.get(conn);
    if (conn.broken || this.#closed || (meta !== undefined && meta.expires > 0 && Date.now() >= meta.expires)) {
      this.#busy.delete(conn);
      this.#discard(conn);
      return;
    }
    const waiter = this.#waiters.shift();
    if (waiter !== undefined) {
      // Stays in #busy: handed straight to the next waiter.
      const now = performance.now();
      this.waitTime.observe(now - waiter.since);
      if (meta) meta.checkedOut = now;
      if (waiter.pipe?.shareable !== true) {
        waiter.resolve(conn);
        return;
      }
      // A shareable forwarded statement takes the shareable ones queued right behind it along:
      // one pipeline, one socket write. Only from the head, so FIFO order holds, and only as many
      // as would otherwise wait for a release: connections being opened (or that may still be)
      // serve the others on their own.
      const coming = this.#connecting + Math.max(0, this.#config.max - this.#idle.length - this.#busy.size - this.#connecting - this.#ending.size);
      const depth = Math.min(this.#config.pipelineDepth, this.#waiters.live + 1 - coming);
      // And only while, at the recent pace of the statements ahead, each one's turn comes before its
      // acquire deadline (pipeline.ts).
      const group = this.#paces.group(waiter.pipe, depth, now, () => this.#waiters.peek(), () => {
        const next = this.#waiters.shift()!;
        this.waitTime.observe(now - next.since);
      });
      this.#runForward(conn, group);
      return;
    }
    this.#busy.delete(conn);
    this.#idle.push(conn);
  }

  /** Opens connections for waiters, within the cap. */
  #grow(): void {
    if (this.#closed || this.#retryTimer !== undefined) return;
    const open = this.#idle.length + this.#busy.size;
    // Fix: a connection being closed still holds its server session until the close completes;
    // opening its replacement at once let the server see max + 1 sessions (with a server-side
    // cap equal to max, rotation under load failed connects with 53300 / MariaDB 1226). Ends in
    // progress count toward the cap, and each completed end calls #grow() again.
    let room = this.#config.max - open - this.#connecting - this.#ending.size;
    let want = this.#waiters.live - this.#connecting;
    while (room > 0 && want > 0) {
      room--;
      want--;
      this.#openOne();
    }
  }

  #openOne(): void {
    this.#connecting++;
    const seq = ++this.#seq;
    const opening: Promise<void> = this.#driver.connect(seq).then(
      (conn) => {
        this.#connecting--;
        this.#backoffMillis = 0;
        this.#lastConnectError = undefined;
        this.#created++;
        const now = Date.now();
        // Up to 2.5% shorter lifetimes so connections opened together do not all retire together.
        const life = this.#config.maxLifetimeMillis;
        const expires = life > 0 ? now + life - Math.floor(Math.random() * life * 0.025) : 0;
        this.#meta.set(conn, { created: now, checkedOut: performance.now(), expires, lastUsed: now });
        conn.onBroken(() => this.#onIdleBroken(conn));
        if (this.#closed) {
          this.#end(conn);
          this.#meta.delete(conn);
          return;
        }
        this.#busy.add(conn);
        this.#handBack(conn);
        this.#grow();
      },
      (err: Error) => {
        this.#connecting--;
        this.#lastConnectError = err.message;
        if (this.#closed || this.#waiters.live === 0) return;
        // Back off while the server refuses, but keep trying while anyone waits (F5).
        this.#backoffMillis = Math.min(1000, this.#backoffMillis === 0 ? 25 : this.#backoffMillis * 2);
        this.#retryTimer = setTimeout(() => {
          this.#retryTimer = undefined;
          this.#grow();
        }, this.#backoffMillis);
        this.#retryTimer.unref();
      },
    );
    this.#opening.add(opening);
    void opening.finally(() => this.#opening.delete(opening));
  }

  /**
   * Graceful close of one connection, tracked so close() can wait for it and #grow() counts it
   * against the cap until its session is gone. Bounded: a close that hangs (a dead peer) turns
   * into a destroy after connectTimeoutMillis.
   */
  #end(conn: DriverConnection): void {
    let timer: NodeJS.Timeout | undefined;
    const ending: Promise<void> = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        conn.destroy();
        resolve();
      }, this.#config.connectTimeoutMillis);
      timer.unref();
      conn.end().then(resolve, resolve);
    }).then(() => {
      clearTimeout(timer);
      this.#ending.delete(ending);
      this.#grow();
    });
    this.#ending.add(ending);
  }

  #onIdleBroken(conn: DriverConnection): void {
    const i = this.#idle.indexOf(conn);
    if (i >= 0) {
      this.#idle.splice(i, 1);
      this.#discard(conn);
    }
    // A busy one is discarded when it is released.
  }

  #discard(conn: DriverConnection): void {
    this.#forget(conn);
    this.#end(conn);
    // A slot was freed: open a replacement if anyone waits.
    this.#grow();
  }

  #forget(conn: DriverConnection): void {
    this.#meta.delete(conn);
  }

  #sweep(): void {
    const now = Date.now();
    const idleLimit = this.#config.idleTimeoutMillis;
    for (let i = this.#idle.length - 1; i >= 0; i--) {
      const conn = this.#idle[i];
      const meta = this.#meta.get(conn);
      const expired = meta !== undefined && meta.expires > 0 && now >= meta.expires;
      const stale = idleLimit > 0 && meta !== undefined && now - meta.lastUsed >= idleLimit;
      if (conn.broken || expired || stale) {
        this.#idle.splice(i, 1);
        this.#forget(conn);
        this.#end(conn);
      }
    }
  }

  /**
   * First step of closing: refuses new work and fails every waiter with `BROKER_CLOSED`, at once.
   * Connections still checked out (reservations rolling back) are closed when they come back.
   */
  refuse(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#sweeper) clearInterval(this.#sweeper);
    if (this.#retryTimer) clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    for (const w of this.#waiters.removeWhere()) w.reject(Errors.brokerClosed());
  }

  /**
   * Refuses new work, fails every waiter with `BROKER_CLOSED`, closes idle connections at once and
   * busy ones as they come back; after `graceMillis` the rest are destroyed.
   */
  async close(graceMillis = 5000): Promise<void> {
    if (this.#closeStarted) return;
    this.#closeStarted = true;
    this.refuse();
    for (const c of this.#idle.splice(0)) this.#end(c);
    const deadline = Date.now() + graceMillis;
    while ((this.#busy.size > 0 || this.#opening.size > 0) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 10));
    }
    for (const c of this.#busy) c.destroy();
    this.#busy.clear();
    this.#meta.clear();
    // Fix: connections that came back during the grace (and those a connect in flight opened)
    // were ended without waiting, so close() resolved while their sessions still existed on the
    // server and their sockets still kept the process alive. Wait for them, within the grace.
    const left = Math.max(0, deadline - Date.now());
    if (this.#ending.size > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([Promise.all([...this.#ending]), new Promise((r) => (timer = setTimeout(r, left)))]);
      clearTimeout(timer);
    }
    await this.#driver.close();
  }
}
