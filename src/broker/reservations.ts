/**
 * The broker's side of reservations: leases over the shared slot table, the FIFO of threads
 * waiting for a slot, binding a pooled connection on first use, transaction control, release,
 * lease expiry, and cleanup when a thread dies (DESIGN.md invariants 2–4).
 * @module
 */
import type { BrokerConfig } from '../config/types.js';
import type { DriverConnection } from '../drivers/driver.js';
import { BrokerError, Errors } from '../errors.js';
import type { Pool } from '../pool/pool.js';
import { RESERVED, type SlotClaim, type SlotTable } from '../slots/slot-table.js';
import type { Peer } from '../transport/port-server.js';
import type {
  QueryRequest, ReleaseRequest, ReserveClaimedRequest, ReserveWaitRequest, ReservationRef, TxRequest,
} from '../transport/protocol.js';
import { Lease } from './lease.js';
import { txStatements } from './tx-statements.js';
import { toReply } from './request-handler.js';

/** The server-side backstop fires this long after the lease would have. */
const BACKSTOP_SLACK_MILLIS = 1000;
/** Errors that end a reserved connection but say more than TX_CONNECTION_LOST, so they reach the caller as they are. */
const KEEPS_OWN_CODE: ReadonlySet<string> = new Set(['COMMIT_OUTCOME_UNKNOWN', 'QUERY_TIMEOUT', 'RESULT_TOO_LARGE']);
/** Waiter count published once closed: threads never take the lock-free path again. */
const CLOSED_WAITERS = 0x3fffffff;

interface SlotWaiter {
  peer: Peer;
  id: number;
  idleMillis: number;
  maxMillis: number;
  timer: NodeJS.Timeout;
  done: boolean;
}

/** Why a lease ends; shown in logs and events. */
export type EndReason = 'released' | 'idle-timeout' | 'max-lifetime' | 'thread-exit' | 'broker-close' | 'connection-lost';

/** Main-thread manager of every reservation. */
export class Reservations {
  readonly #table: SlotTable;
  readonly #pools: Pool[];
  readonly #config: BrokerConfig;
  readonly #leases: (Lease | undefined)[][];
  readonly #waiters: SlotWaiter[][];
  readonly #peersByThread = new Map<number, number>();
  readonly #timer: NodeJS.Timeout;
  #closed = false;
  /** Count of leases ended by expiry, for metrics. */
  expired = 0;

  constructor(table: SlotTable, pools: Pool[], config: BrokerConfig) {
    this.#table = table;
    this.#pools = pools;
    this.#config = config;
    this.#leases = pools.map((_, db) => new Array<Lease | undefined>(table.slotCounts[db]).fill(undefined));
    this.#waiters = pools.map(() => []);
    this.#timer = setInterval(() => this.tick(), config.reservations.housekeepingMillis);
    this.#timer.unref();
  }

  /** Live reservations of database `db`. */
  reservedCount(db: number): number {
    return this.#table.reservedCount(db);
  }

  /** A thread connected; threads are tracked so that a second port of a live thread does not look like a death. */
  peerArrived(peer: Peer): void {
    this.#peersByThread.set(peer.thread, (this.#peersByThread.get(peer.thread) ?? 0) + 1);
  }

  /** Dispatches reservation requests. */
  handle(req: TxRequest | ReserveWaitRequest | ReserveClaimedRequest | ReleaseRequest, peer: Peer): void {
    switch (req.t) {
      case 'rw':
        this.#reserveWait(req, peer);
        return;
      case 'rc':
        // Sent by older clients; current ones write the lease times into the slot and send nothing.
        this.#adopt(req.rs, peer.thread, req.idleMillis, req.maxMillis);
        peer.reply({ id: req.id });
        return;
      case 'tx':
        this.#tx(req, peer);
        return;
      case 'rl':
        this.#release(req, peer);
        return;
      default:
        peer.fail((req as { id: number }).id, Errors.invalidArgument(`unknown request type ${String((req as { t: unknown }).t)}`));
    }
  }

  #leaseDefaults(idle: number, max: number): [number, number] {
    const r = this.#config.reservations;
    return [Number.isFinite(idle) && idle >= 0 ? idle : r.idleTimeoutMillis, Number.isFinite(max) && max >= 0 ? max : r.maxLifetimeMillis];
  }

  /**
   * Records a live claim with the lease times its claimer asked for (NaN: the configured
   * default); idempotent. The times always come with the claim — from its slot, from a FIFO grant,
   * or from an `rc` announcement of an older client.
   */
  #adopt(rs: ReservationRef, owner: number, idleMillis: number, maxMillis: number, claimedAt = Date.now()): Lease | undefined {
    if (!this.#validRef(rs) || !this.#table.isLive(rs)) return undefined;
    const existing = this.#leases[rs.db][rs.slot];
    if (existing !== undefined && existing.claim.gen === rs.gen) return existing;
    const [idle, max] = this.#leaseDefaults(idleMillis, maxMillis);
    const lease = new Lease({ db: rs.db, slot: rs.slot, gen: rs.gen }, this.#pools[rs.db], owner, idle, max, claimedAt);
    this.#leases[rs.db][rs.slot] = lease;
    this.#table.setDeadline(rs.db, rs.slot, lease.deadline());
    return lease;
  }

  /**
   * Adopts the live claim of `db`/`slot` as the slot describes it: a lock-free claim (threads do
   * not announce them) gets its owner and the lease times its claimer wrote, and its lease runs
   * from the claim (DEADLINE = claim time + the shorter time), not from this adoption.
   * Fix: claims used to be announced by a message (`rc`), and a claim the broker met first by
   * other means (the housekeeping tick, a query from a thread the token was handed to) got the
   * default lease times for good: `reserve({ idleTimeoutMillis })` was then silently ignored.
   */
  #adoptFromTable(db: number, slot: number): Lease | undefined {
    if (this.#table.state(db, slot) !== RESERVED) return undefined;
    const gen = this.#table.gen(db, slot);
    const existing = this.#leases[db][slot];
    if (existing !== undefined && existing.claim.gen === gen) return existing;
    const times = this.#table.leaseTimes(db, slot);
    const [idle, max] = this.#leaseDefaults(times.idleMillis, times.maxMillis);
    const span = Math.min(idle || Infinity, max || Infinity);
    const now = Date.now();
    const claimedAt = Number.isFinite(span) ? Math.min(now, this.#table.deadline(db, slot) - span) : now;
    return this.#adopt({ db, slot, gen }, this.#table.owner(db, slot), idle, max, claimedAt);
  }

  /** Adopts every lock-free claim of `db` the broker has not seen yet. */
  #adoptAll(db: number): void {
    for (let slot = 0; slot < this.#table.slotCounts[db]; slot++) {
      if (this.#leases[db][slot] === undefined) this.#adoptFromTable(db, slot);
    }
  }

  #validRef(rs: ReservationRef | undefined): rs is ReservationRef {
    return rs !== null && typeof rs === 'object' && this.#table.has(rs.db, rs.slot) && Number.isInteger(rs.gen);
  }

  /** The live lease of `rs`, or an error saying why there is none. */
  #lookup(rs: ReservationRef | undefined): Lease | BrokerError {
    if (!this.#validRef(rs)) return Errors.tokenInvalid('the request names no reservation slot');
    const lease = this.#leases[rs.db][rs.slot];
    if (lease !== undefined && lease.claim.gen === rs.gen) {
      if (lease.lost !== undefined) return Errors.txConnectionLost(lease.pool.name, lease.lost);
      if (lease.ending) return Errors.tokenExpired('the reservation was released or its lease expired');
      return lease;
    }
    // Claimed in shared memory (lock-free) and not seen by the broker yet.
    const adopted = this.#adoptFromTable(rs.db, rs.slot);
    return adopted !== undefined && adopted.claim.gen === rs.gen ? adopted : Errors.tokenExpired('the reservation was released or its lease expired');
  }

  async #bind(lease: Lease): Promise<DriverConnection> {
    if (lease.conn !== undefined) return lease.conn;
    const conn = await lease.pool.acquire();
    if (lease.ending) {
      lease.pool.release(conn);
      throw Errors.tokenExpired('the reservation was released while it waited for a connection');
    }
    lease.conn = conn;
    const backstop = lease.pool.driver.backstopSql;
    const lifetime = Math.max(lease.idleMillis, 0);
    if (backstop !== undefined && lifetime > 0) {
      await this.#onConn(lease, (c) => c.query(backstop.call(lease.pool.driver, lifetime + BACKSTOP_SLACK_MILLIS), undefined));
    }
    return conn;
  }

  /** Runs `fn` on the lease's connection; a lost connection poisons the lease. */
  async #onConn<T>(lease: Lease, fn: (c: DriverConnection) => Promise<T>): Promise<T> {
    const conn = lease.conn!;
    try {
      return await fn(conn);
    } catch (err) {
      if (conn.broken || (err instanceof BrokerError && err.code === 'CONNECTION_LOST')) {
        lease.lost = err instanceof Error ? err.message : String(err);
        lease.conn = undefined;
        lease.pool.destroy(conn);
        // The statement that ended the connection keeps its own answer when it says more than
        // "lost": a COMMIT whose outcome is unknown, a deadline, a result too large.
        if (err instanceof BrokerError && KEEPS_OWN_CODE.has(err.code)) throw err;
        throw Errors.txConnectionLost(lease.pool.name, lease.lost);
      }
      throw err;
    }
  }

  /** A statement on a reservation. */
  query(req: QueryRequest, peer: Peer): void {
    const lease = this.#lookup(req.rs);
    if (lease instanceof BrokerError) {
      peer.fail(req.id, lease);
      return;
    }
    lease.run({
      run: async () => {
        try {
          await this.#bind(lease);
          const res = await this.#onConn(lease, (c) => c.query(req.sql, req.params));
          this.#touch(lease);
          peer.reply(toReply(req.id, res));
        } catch (err) {
          peer.fail(req.id, err);
        }
      },
      refuse: (err) => peer.fail(req.id, err),
    });
  }

  #touch(lease: Lease): void {
    lease.lastUsed = Date.now();
    this.#table.setDeadline(lease.claim.db, lease.claim.slot, lease.deadline());
  }

  #tx(req: TxRequest, peer: Peer): void {
    const lease = this.#lookup(req.rs);
    if (lease instanceof BrokerError) {
      peer.fail(req.id, lease);
      return;
    }
    let statements: string[];
    try {
      statements = txStatements(lease.pool.driver, req);
    } catch (err) {
      peer.fail(req.id, err);
      return;
    }
    const ends = req.op === 'commit' || req.op === 'rollback';
    lease.run({
      run: async () => {
        try {
          const conn = await this.#bind(lease);
          // Fix: BEGIN inside an open transaction only warns on PostgreSQL, but on MySQL/MariaDB
          // START TRANSACTION silently COMMITs the open one, so a later rollback() undid only the
          // second half. Refused on both kinds alike; savepoints are the way to nest.
          if (req.op === 'begin' && conn.needsReset()) {
            throw Errors.invalidArgument('a transaction is already open on this reservation; commit or roll back first, or use a savepoint');
          }
          // Fix (RELIABILITY.md F2): a connection lost during COMMIT answered TX_CONNECTION_LOST
          // ("rolled back"), though the server may have committed; the driver's commit() tells
          // COMMIT_OUTCOME_UNKNOWN (with the transaction id on PostgreSQL) apart.
          for (const sql of statements) await this.#onConn(lease, async (c) => {
            if (req.op === 'commit' && c.commit !== undefined) await c.commit();
            else await c.query(sql, undefined);
          });
          this.#touch(lease);
          if (!ends) {
            peer.reply({ id: req.id });
            return;
          }
          // Fix: the transaction is over, so its token must be too (RELIABILITY.md S1, "reuse after
          // commit / rollback"): a new generation starts; the caller's Reservation continues under
          // it (the reply carries it), every other holder of the old token gets TOKEN_EXPIRED.
          const gen = this.#table.rotate(lease.claim);
          if (gen === undefined) {
            peer.reply({ id: req.id });
            return;
          }
          lease.claim.gen = gen;
          peer.reply({ id: req.id, rs: { slot: lease.claim.slot, gen } });
        } catch (err) {
          peer.fail(req.id, err);
        }
      },
      refuse: (err) => peer.fail(req.id, err),
    });
  }

  #release(req: ReleaseRequest, peer: Peer): void {
    if (!this.#validRef(req.rs)) {
      peer.fail(req.id, Errors.tokenInvalid('the request names no reservation slot'));
      return;
    }
    const lease = this.#leases[req.rs.db][req.rs.slot];
    if (lease === undefined || lease.claim.gen !== req.rs.gen || lease.ending) {
      // A lock-free claim the broker has not seen yet: end it from the table.
      const fresh = lease === undefined || lease.claim.gen !== req.rs.gen ? this.#adoptFromTable(req.rs.db, req.rs.slot) : undefined;
      const adopted = fresh !== undefined && fresh.claim.gen === req.rs.gen && !fresh.ending ? fresh : undefined;
      if (adopted === undefined) {
        peer.fail(req.id, Errors.tokenExpired('the reservation was already released or its lease expired'));
        return;
      }
      this.end(adopted, 'released').then(() => peer.reply({ id: req.id }), (err) => peer.fail(req.id, err));
      return;
    }
    // Behind the operations already queued, so "release" never cuts a statement short.
    lease.run({
      run: async () => {
        // end() waits for the lease to be idle; started from inside its own op it would wait on itself.
        void this.end(lease, 'released', true).then(() => peer.reply({ id: req.id }), (err) => peer.fail(req.id, err));
      },
      refuse: (err) => peer.fail(req.id, err),
    });
  }

  /**
   * Ends a lease: no new operation starts, queued ones are refused with `TOKEN_EXPIRED`, the
   * running one finishes, an open transaction is rolled back, session state is reset, the
   * connection goes back to the pool (or is destroyed), the generation is bumped and the slot
   * goes to the next waiter or becomes free.
   */
  end(lease: Lease, reason: EndReason, fromOwnQueue = false): Promise<void> {
    if (lease.ended !== undefined) return lease.ended;
    lease.ending = true;
    lease.ended = (async () => {
      this.#table.retire(lease.claim);
      // Fix: requests still queued when the broker closes answer BROKER_CLOSED (RELIABILITY.md F9), not TOKEN_EXPIRED.
      lease.drain(() => (reason === 'broker-close' ? Errors.brokerClosed()
        : lease.lost !== undefined ? Errors.txConnectionLost(lease.pool.name, lease.lost) : Errors.tokenExpired(`the reservation ended (${reason})`)));
      if (!fromOwnQueue) await lease.whenIdle();
      const conn = lease.conn;
      lease.conn = undefined;
      if (conn !== undefined) {
        try {
          if (conn.needsReset()) await conn.reset();
          // A reservation may have changed session state; the next user of the connection must not see it.
          const teardown = lease.pool.driver.reservedTeardownSql;
          if (conn.resetSession !== undefined) await conn.resetSession();
          else if (teardown !== undefined) await conn.query(teardown, undefined);
          lease.pool.release(conn);
        } catch {
          lease.pool.destroy(conn);
        }
      }
      if (reason === 'idle-timeout' || reason === 'max-lifetime') this.expired++;
      this.#leases[lease.claim.db][lease.claim.slot] = undefined;
      this.#freeSlot(lease.claim);
    })();
    return lease.ended;
  }

  #freeSlot(claim: SlotClaim): void {
    const queue = this.#waiters[claim.db];
    while (queue.length > 0) {
      const w = queue.shift()!;
      if (w.done || w.peer.closed) continue;
      w.done = true;
      clearTimeout(w.timer);
      this.#publishWaiters(claim.db);
      const [idle, max] = this.#leaseDefaults(w.idleMillis, w.maxMillis);
      const granted = this.#table.free(claim.db, claim.slot, { owner: w.peer.thread, deadline: Date.now() + Math.min(idle || Infinity, max || Infinity) })!;
      const lease = this.#adopt(granted, w.peer.thread, idle, max);
      if (lease === undefined) continue;
      w.peer.reply({ id: w.id, rs: { slot: granted.slot, gen: granted.gen } });
      return;
    }
    this.#publishWaiters(claim.db);
    this.#table.free(claim.db, claim.slot);
  }

  /**
   * Publishes the number of queued waiters, which threads read before their lock-free claim.
   * Fix: once the broker is closed it publishes a huge count instead, so no thread can claim a
   * slot in shared memory any more (before, `reserve()` kept succeeding after `close()` and
   * returned a reservation nobody tracked); the claim then goes to the broker and gets BROKER_CLOSED.
   */
  #publishWaiters(db: number): void {
    this.#table.setWaiters(db, this.#closed ? CLOSED_WAITERS : this.#liveWaiters(db));
  }

  #liveWaiters(db: number): number {
    let n = 0;
    for (const w of this.#waiters[db]) if (!w.done && !w.peer.closed) n++;
    return n;
  }

  /**
   * True when `thread` holds a reservation of `db` it could be waiting on. Fix: one whose token was
   * read (handed over) does not count — it lives by its lease and is ended by whoever holds the
   * token (another thread, a later HTTP request), so waiting cannot wait on itself. Before, a
   * piscina worker that had started one HTTP transaction got POOL_DEADLOCK for every new one while
   * the slots were taken, instead of waiting its turn (the wait is bounded by waitMillis anyway).
   */
  #holdsLease(thread: number, db: number): boolean {
    // Lock-free claims count too: a thread's claims are adopted before it is asked about them.
    this.#adoptAll(db);
    for (const l of this.#leases[db]) {
      if (l !== undefined && !l.ending && l.owner === thread && !this.#table.handed(db, l.claim.slot)) return true;
    }
    return false;
  }

  #reserveWait(req: ReserveWaitRequest, peer: Peer): void {
    const db = req.db;
    if (!Number.isInteger(db) || db < 0 || db >= this.#pools.length) {
      peer.fail(req.id, Errors.invalidArgument('reserve names no database'));
      return;
    }
    const pool = this.#pools[db];
    const slots = this.#table.slotCounts[db];
    if (slots === 0) {
      peer.fail(req.id, Errors.reserveTimeout(pool.name, 0, 0, 0));
      return;
    }
    const [idle, max] = this.#leaseDefaults(req.idleMillis, req.maxMillis);
    if (this.#liveWaiters(db) === 0) {
      const claim = this.#table.claimFor(db, peer.thread, Date.now() + Math.min(idle || Infinity, max || Infinity));
      if (claim !== undefined) {
        this.#adopt(claim, peer.thread, idle, max);
        peer.reply({ id: req.id, rs: { slot: claim.slot, gen: claim.gen } });
        return;
      }
    }
    // Fix (found by RELIABILITY.md F8): a slot whose lease is ending (its running statement or its
    // rollback still going) frees on its own, so waiting for it cannot wait on this thread; it
    // used to answer POOL_DEADLOCK to a holder that asked while an expired lease was being reclaimed.
    if (this.#holdsLease(peer.thread, db) && !this.#leases[db].some((l) => l !== undefined && l.ending)) {
      // Every slot is taken and this thread holds one of them: waiting could wait on itself.
      peer.fail(req.id, Errors.poolDeadlock(pool.name, pool.stats()));
      return;
    }
    const waitMillis = Number.isFinite(req.waitMillis) && req.waitMillis >= 0 ? req.waitMillis : this.#defaultWait(db);
    const w: SlotWaiter = {
      peer, id: req.id, idleMillis: idle, maxMillis: max, done: false,
      timer: setTimeout(() => {
        if (w.done) return;
        w.done = true;
        const q = this.#waiters[db];
        q.splice(q.indexOf(w), 1);
        this.#publishWaiters(db);
        peer.fail(req.id, Errors.reserveTimeout(pool.name, waitMillis, this.#table.reservedCount(db), slots));
      }, waitMillis),
    };
    this.#waiters[db].push(w);
    this.#publishWaiters(db);
  }

  #defaultWait(db: number): number {
    return Object.values(this.#config.databases)[db].acquireTimeoutMillis;
  }

  /** True when a plain query from `peer` could only be served by a connection its own thread holds. */
  wouldDeadlock(pool: Pool, peer: Peer): boolean {
    const db = this.#pools.indexOf(pool);
    if (db < 0 || !this.#holdsLease(peer.thread, db)) return false;
    const s = pool.stats();
    if (s.idle > 0 || s.open + s.connecting < s.max) return false;
    let bound = 0;
    for (const l of this.#leases[db]) if (l?.conn !== undefined) bound++;
    return bound >= s.max;
  }

  /** A port closed. When it was the thread's last one, the thread is gone: free what it never handed over. */
  peerGone(peer: Peer): void {
    for (const q of this.#waiters) {
      for (const w of q) {
        if (w.peer === peer && !w.done) {
          w.done = true;
          clearTimeout(w.timer);
        }
      }
    }
    for (let db = 0; db < this.#waiters.length; db++) {
      this.#waiters[db] = this.#waiters[db].filter((w) => !w.done);
      this.#publishWaiters(db);
    }
    const left = (this.#peersByThread.get(peer.thread) ?? 1) - 1;
    if (left > 0) {
      this.#peersByThread.set(peer.thread, left);
      return;
    }
    this.#peersByThread.delete(peer.thread);
    if (peer.thread === 0 && !this.#closed) return; // the main thread is not dead because one of its ports closed
    for (let db = 0; db < this.#table.slotCounts.length; db++) {
      for (let slot = 0; slot < this.#table.slotCounts[db]; slot++) {
        // A claim the thread died in the middle of (between its two CASes): nobody else can finish it.
        if (this.#table.claimer(db, slot) === peer.thread && this.#table.abandon(db, slot, peer.thread)) {
          this.#freeSlot({ db, slot, gen: this.#table.gen(db, slot) });
          continue;
        }
        if (this.#table.state(db, slot) !== RESERVED || this.#table.owner(db, slot) !== peer.thread || this.#table.handed(db, slot)) continue;
        const lease = this.#lookup({ db, slot, gen: this.#table.gen(db, slot) });
        if (lease instanceof Lease) void this.end(lease, 'thread-exit');
      }
    }
  }

  /** Housekeeping: adopt lock-free claims not seen yet, end expired leases. */
  tick(now = Date.now()): void {
    for (let db = 0; db < this.#table.slotCounts.length; db++) {
      for (let slot = 0; slot < this.#table.slotCounts[db]; slot++) {
        const lease = this.#leases[db][slot] ?? this.#adoptFromTable(db, slot);
        if (lease === undefined) continue;
        if (lease.ending) continue;
        // Fix: max lifetime is absolute, so it is enforced on busy leases too (before, a thread that
        // kept a statement queued at every tick was never reclaimed). The token is refused from
        // this tick on, queued statements are refused, the running one finishes, then ROLLBACK.
        if (lease.maxMillis > 0 && now >= lease.claimedAt + lease.maxMillis) void this.end(lease, 'max-lifetime');
        else if (!lease.busy && lease.idleMillis > 0 && now >= lease.lastUsed + lease.idleMillis) void this.end(lease, 'idle-timeout');
      }
    }
  }

  /** Refuses waiters and ends every lease (rolling back open transactions). */
  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#timer);
    for (let db = 0; db < this.#waiters.length; db++) {
      for (const w of this.#waiters[db]) {
        if (w.done) continue;
        w.done = true;
        clearTimeout(w.timer);
        w.peer.fail(w.id, Errors.brokerClosed());
      }
      this.#waiters[db] = [];
      this.#publishWaiters(db);
    }
    const ends: Promise<void>[] = [];
    for (let db = 0; db < this.#table.slotCounts.length; db++) {
      for (let slot = 0; slot < this.#table.slotCounts[db]; slot++) {
        const lease = this.#leases[db][slot] ?? this.#adoptFromTable(db, slot);
        if (lease !== undefined) ends.push(this.end(lease, 'broker-close'));
      }
    }
    await Promise.allSettled(ends);
  }
}
