/**
 * The shared slot table: reservation slots claimed, checked and freed with Atomics, from any
 * thread, without a round trip to the main thread. Every transition of STATE is one
 * `Atomics.compareExchange`; the only other writer of STATE is the broker while a slot is
 * RETIRING (which no thread can enter or leave but the broker).
 * @module
 */
import { randomFillSync } from 'node:crypto';
import {
  CLAIMING, DB_FIELDS, DB_WAITERS_OFFSET, FREE, HEADER_MAGIC_OFFSET, HEADER_VERSION_OFFSET, LAYOUT_VERSION, LEASE_DEFAULT, MAGIC,
  RESERVED, RETIRING, SLOT_DEADLINE_OFFSET, SLOT_GEN_OFFSET, SLOT_HANDED_OFFSET, SLOT_IDLE_OFFSET, SLOT_MAX_OFFSET, SLOT_NONCE_OFFSET,
  SLOT_NONCE_WORDS, SLOT_OWNER_OFFSET, SLOT_STATE_OFFSET, SLOT_STRIDE, claimerOf, claimingState, dbBase, tableBytes,
} from './slot-layout.js';

/** The largest epoch-ms deadline (the last valid `Date`): a lease that never expires. */
export const NEVER = 8.64e15;

/**
 * Fix: a lease with `idleTimeoutMillis: 0` and `maxLifetimeMillis: 0` ("never") has an infinite
 * deadline, and `BigInt(Infinity)` threw a RangeError: every statement of such a reservation failed
 * with INVALID_ARGUMENT, and a FIFO grant with those times threw inside `free()`, leaving the slot
 * RETIRING for good. Deadlines are clamped to NEVER instead.
 */
function deadlineWord(deadline: number): bigint {
  return BigInt(Number.isFinite(deadline) ? Math.min(Math.floor(deadline), NEVER) : NEVER);
}

/**
 * Nonces come from a per-thread pool of CSPRNG bytes refilled 4 KiB at a time. Fix (performance):
 * one `randomFillSync` call costs 4-8 µs here, about the same for 16 bytes as for 4 KiB, which
 * alone made the lock-free `reserve()` cost half a port round trip; from the pool a nonce costs
 * ~0.1 µs. The bytes are the same CSPRNG output, each used once.
 */
const NONCE_POOL_WORDS = 1024;
const noncePool = new Int32Array(NONCE_POOL_WORDS);
let noncePoolAt = NONCE_POOL_WORDS;

function nextNonce(): Int32Array {
  if (noncePoolAt + SLOT_NONCE_WORDS > NONCE_POOL_WORDS) {
    randomFillSync(noncePool);
    noncePoolAt = 0;
  }
  const out = noncePool.subarray(noncePoolAt, noncePoolAt + SLOT_NONCE_WORDS);
  noncePoolAt += SLOT_NONCE_WORDS;
  return out;
}

/** Lease times of a claim as stored in its slot: ms, or NaN for "the configured default". */
export interface LeaseTimes {
  idleMillis: number;
  maxMillis: number;
}

function leaseWord(ms: number | undefined): number {
  return ms !== undefined && Number.isInteger(ms) && ms >= 0 && ms <= 0x7fffffff ? ms : LEASE_DEFAULT;
}

/** A claimed slot: where it is and which generation the claim belongs to. */
export interface SlotClaim {
  db: number;
  slot: number;
  gen: number;
}

/** A view of the shared table; one per thread, all over the same memory. */
export class SlotTable {
  readonly buffer: SharedArrayBuffer;
  readonly slotCounts: readonly number[];
  readonly #i32: Int32Array;
  readonly #i64: BigInt64Array;
  readonly #bases: number[];

  /** Creates a new table (broker) or a view of an existing one (threads). */
  constructor(slotCounts: readonly number[], buffer?: SharedArrayBuffer) {
    this.slotCounts = slotCounts;
    this.buffer = buffer ?? new SharedArrayBuffer(tableBytes(slotCounts));
    if (this.buffer.byteLength !== tableBytes(slotCounts)) throw new RangeError('slot table buffer has the wrong size');
    this.#i32 = new Int32Array(this.buffer);
    this.#i64 = new BigInt64Array(this.buffer);
    this.#bases = slotCounts.map((_, db) => dbBase(slotCounts, db));
    if (buffer === undefined) {
      this.#i32[HEADER_MAGIC_OFFSET] = MAGIC;
      this.#i32[HEADER_VERSION_OFFSET] = LAYOUT_VERSION;
    } else if (this.#i32[HEADER_MAGIC_OFFSET] !== MAGIC || this.#i32[HEADER_VERSION_OFFSET] !== LAYOUT_VERSION) {
      throw new RangeError('slot table buffer has an unknown layout');
    }
  }

  #at(db: number, slot: number): number {
    return this.#bases[db] + DB_FIELDS + slot * SLOT_STRIDE;
  }

  /** True when `db`/`slot` name an existing slot. */
  has(db: number, slot: number): boolean {
    return Number.isInteger(db) && Number.isInteger(slot) && db >= 0 && db < this.slotCounts.length && slot >= 0 && slot < this.slotCounts[db];
  }

  /** Threads queued in the broker for a slot of `db`. */
  waiters(db: number): number {
    return Atomics.load(this.#i32, this.#bases[db] + DB_WAITERS_OFFSET);
  }

  /** Broker only: publishes the number of queued waiters. */
  setWaiters(db: number, n: number): void {
    Atomics.store(this.#i32, this.#bases[db] + DB_WAITERS_OFFSET, n);
  }

  /**
   * Claims any FREE slot of `db` for thread `owner`, or returns undefined when none is free.
   * Ordering: the CAS FREE→CLAIMING(owner) makes this thread the only writer of the slot and
   * names it; owner, nonce, deadline and lease times are written next; the final CAS
   * CLAIMING(owner)→RESERVED publishes them (Atomics are sequentially consistent, so a thread that
   * reads RESERVED also reads the nonce written before).
   */
  claim(db: number, owner: number, deadline: number, fair = true, lease?: Partial<LeaseTimes>): SlotClaim | undefined {
    // Fairness: while the broker has queued waiters, new claims go to the back of its queue.
    if (fair && this.waiters(db) > 0) return undefined;
    const n = this.slotCounts[db];
    for (let slot = 0; slot < n; slot++) {
      const at = this.#at(db, slot);
      if (Atomics.load(this.#i32, at + SLOT_STATE_OFFSET) !== FREE) continue;
      const claiming = claimingState(owner);
      if (Atomics.compareExchange(this.#i32, at + SLOT_STATE_OFFSET, FREE, claiming) !== FREE) continue;
      const gen = this.#fill(at, owner, deadline, lease);
      // Only the broker ever moves a CLAIMING slot, and only once this thread is dead.
      Atomics.compareExchange(this.#i32, at + SLOT_STATE_OFFSET, claiming, RESERVED);
      return { db, slot, gen };
    }
    return undefined;
  }

  #fill(at: number, owner: number, deadline: number, lease?: Partial<LeaseTimes>): number {
    // GEN was bumped by the broker before the slot became FREE; read it after our CAS won.
    const gen = Atomics.load(this.#i32, at + SLOT_GEN_OFFSET);
    Atomics.store(this.#i32, at + SLOT_OWNER_OFFSET, owner);
    // Fix: HANDED is tagged with the generation (see SLOT_HANDED_OFFSET); `gen` itself means "not handed".
    Atomics.store(this.#i32, at + SLOT_HANDED_OFFSET, gen);
    const nonce = nextNonce();
    for (let i = 0; i < SLOT_NONCE_WORDS; i++) Atomics.store(this.#i32, at + SLOT_NONCE_OFFSET + i, nonce[i]);
    Atomics.store(this.#i64, (at + SLOT_DEADLINE_OFFSET) / 2, deadlineWord(deadline));
    Atomics.store(this.#i32, at + SLOT_IDLE_OFFSET, leaseWord(lease?.idleMillis));
    Atomics.store(this.#i32, at + SLOT_MAX_OFFSET, leaseWord(lease?.maxMillis));
    return gen;
  }

  /** The slot's state. */
  state(db: number, slot: number): number {
    return Atomics.load(this.#i32, this.#at(db, slot) + SLOT_STATE_OFFSET);
  }

  /** The slot's current generation. */
  gen(db: number, slot: number): number {
    return Atomics.load(this.#i32, this.#at(db, slot) + SLOT_GEN_OFFSET);
  }

  /** `threadId` of the claimer. */
  owner(db: number, slot: number): number {
    return Atomics.load(this.#i32, this.#at(db, slot) + SLOT_OWNER_OFFSET);
  }

  /** True once the token of the current claim was read. */
  handed(db: number, slot: number): boolean {
    const at = this.#at(db, slot);
    // HANDED holds GEN + 1 of the generation whose token was read (int32 wrap-around, like GEN).
    return Atomics.load(this.#i32, at + SLOT_HANDED_OFFSET) === ((Atomics.load(this.#i32, at + SLOT_GEN_OFFSET) + 1) | 0);
  }

  /**
   * Marks the claim handed over. Fix: the mark is tagged with `claim.gen`, so a stale holder (its
   * claim released and the slot claimed again between our GEN check and our store) marks nothing
   * live; before, it stored a plain 1 and the next owner's reservation survived that owner's death.
   */
  markHanded(claim: SlotClaim): void {
    const at = this.#at(claim.db, claim.slot);
    if (Atomics.load(this.#i32, at + SLOT_GEN_OFFSET) === claim.gen) Atomics.store(this.#i32, at + SLOT_HANDED_OFFSET, (claim.gen + 1) | 0);
  }

  /** The 16 nonce bytes of the current claim. */
  nonce(db: number, slot: number): Uint8Array {
    const at = this.#at(db, slot);
    const words = new Int32Array(SLOT_NONCE_WORDS);
    for (let i = 0; i < SLOT_NONCE_WORDS; i++) words[i] = Atomics.load(this.#i32, at + SLOT_NONCE_OFFSET + i);
    return new Uint8Array(words.buffer);
  }

  /** The lease times the claimer asked for (NaN: the configured default). */
  leaseTimes(db: number, slot: number): LeaseTimes {
    const at = this.#at(db, slot);
    const idle = Atomics.load(this.#i32, at + SLOT_IDLE_OFFSET);
    const max = Atomics.load(this.#i32, at + SLOT_MAX_OFFSET);
    return { idleMillis: idle === LEASE_DEFAULT ? NaN : idle, maxMillis: max === LEASE_DEFAULT ? NaN : max };
  }

  /** Lease deadline (epoch ms) of the current claim. */
  deadline(db: number, slot: number): number {
    return Number(Atomics.load(this.#i64, (this.#at(db, slot) + SLOT_DEADLINE_OFFSET) / 2));
  }

  /** Broker only: moves the lease deadline. */
  setDeadline(db: number, slot: number, deadline: number): void {
    Atomics.store(this.#i64, (this.#at(db, slot) + SLOT_DEADLINE_OFFSET) / 2, deadlineWord(deadline));
  }

  /** True when `claim` is the slot's live claim. */
  isLive(claim: SlotClaim): boolean {
    const at = this.#at(claim.db, claim.slot);
    // Read STATE before GEN: the broker bumps GEN while RETIRING, so a live state read first
    // followed by a matching GEN means the claim had not been retired at the GEN read.
    return Atomics.load(this.#i32, at + SLOT_STATE_OFFSET) === RESERVED && Atomics.load(this.#i32, at + SLOT_GEN_OFFSET) === claim.gen;
  }

  /**
   * Broker only: starts a new generation of a live claim (after its commit or rollback), so tokens
   * of the finished transaction are refused (`TOKEN_EXPIRED`) while the reservation goes on under
   * a fresh token. Returns the new generation, or undefined when the claim is not live.
   * Ordering: the slot stays RESERVED throughout and only the broker writes GEN of a RESERVED slot,
   * so a reader sees either the old generation (and accepts the old token) or the new one.
   * A handed-over reservation stays handed over under its new generation.
   */
  rotate(claim: SlotClaim): number | undefined {
    if (!this.isLive(claim)) return undefined;
    const at = this.#at(claim.db, claim.slot);
    const wasHanded = this.handed(claim.db, claim.slot);
    const gen = (Atomics.add(this.#i32, at + SLOT_GEN_OFFSET, 1) + 1) | 0;
    Atomics.store(this.#i32, at + SLOT_HANDED_OFFSET, wasHanded ? (gen + 1) | 0 : gen);
    return gen;
  }

  /** The thread claiming `db`/`slot` right now (between its two CASes), or undefined. */
  claimer(db: number, slot: number): number | undefined {
    return claimerOf(this.state(db, slot));
  }

  /**
   * Broker only: CLAIMING(thread)→RETIRING for a claim its thread never finished because it died.
   * False when the slot is not being claimed by `thread`. The caller then `free`s the slot.
   */
  abandon(db: number, slot: number, thread: number): boolean {
    const claiming = claimingState(thread);
    return Atomics.compareExchange(this.#i32, this.#at(db, slot) + SLOT_STATE_OFFSET, claiming, RETIRING) === claiming;
  }

  /** Broker only: RESERVED→RETIRING for this claim. False when it is not live (already retired). */
  retire(claim: SlotClaim): boolean {
    const at = this.#at(claim.db, claim.slot);
    if (Atomics.load(this.#i32, at + SLOT_GEN_OFFSET) !== claim.gen) return false;
    return Atomics.compareExchange(this.#i32, at + SLOT_STATE_OFFSET, RESERVED, RETIRING) === RESERVED;
  }

  /**
   * Broker only: ends a RETIRING slot. GEN is bumped *before* the state leaves RETIRING, so every
   * token of the old claim is refused from the moment anyone can claim the slot again.
   * With `handTo`, the slot goes straight to a queued waiter (never FREE, so no one barges in).
   */
  free(db: number, slot: number, handTo?: { owner: number; deadline: number }): SlotClaim | undefined {
    const at = this.#at(db, slot);
    Atomics.add(this.#i32, at + SLOT_GEN_OFFSET, 1);
    if (handTo !== undefined) {
      const gen = this.#fill(at, handTo.owner, handTo.deadline);
      Atomics.compareExchange(this.#i32, at + SLOT_STATE_OFFSET, RETIRING, RESERVED);
      return { db, slot, gen };
    }
    Atomics.compareExchange(this.#i32, at + SLOT_STATE_OFFSET, RETIRING, FREE);
    return undefined;
  }

  /** Broker only: claims a FREE slot on behalf of a waiter (same as `claim`, ignoring fairness). */
  claimFor(db: number, owner: number, deadline: number): SlotClaim | undefined {
    return this.claim(db, owner, deadline, false);
  }

  /** Number of slots of `db` that are not FREE. */
  reservedCount(db: number): number {
    let n = 0;
    for (let slot = 0; slot < this.slotCounts[db]; slot++) if (this.state(db, slot) !== FREE) n++;
    return n;
  }
}

export { FREE, CLAIMING, RESERVED, RETIRING };
