/**
 * The layout of the shared slot table: named constants, no magic indexes (STYLE.md point 8).
 *
 * One `Int32Array` over a `SharedArrayBuffer`:
 *
 * ```
 * [ HEADER_FIELDS ][ db 0: DB_FIELDS ][ db 0 slots: n0 × SLOT_STRIDE ][ db 1: DB_FIELDS ][ … ]
 * ```
 * Each slot: STATE, GEN, OWNER, HANDED, NONCE×4, DEADLINE (two words, a BigInt64 view), IDLE, MAX.
 * @module
 */

/** Int32 words in the table header. */
export const HEADER_FIELDS = 2;
/** Header word 0: a magic number, to catch a buffer of the wrong shape. */
export const HEADER_MAGIC_OFFSET = 0;
/** Header word 1: the layout version. */
export const HEADER_VERSION_OFFSET = 1;
export const MAGIC = 0x74627331; // 'tbs1'
export const LAYOUT_VERSION = 2;

/** Int32 words per database before its slots. */
export const DB_FIELDS = 2;
/**
 * Threads waiting in the broker's FIFO for a slot of this database. Written only by the broker.
 * A thread takes the lock-free fast path only while it reads 0, so queued waiters are not overtaken.
 */
export const DB_WAITERS_OFFSET = 0;
/** Reserved for alignment: keeps every slot's DEADLINE on an 8-byte boundary. */
export const DB_SPARE_OFFSET = 1;

/** Int32 words per slot (even, so the BigInt64 deadline stays aligned). */
export const SLOT_STRIDE = 12;
/** The slot's state; changed only with `Atomics.compareExchange` (or by the broker while RETIRING). */
export const SLOT_STATE_OFFSET = 0;
/**
 * Bumped by the broker on every release, before the slot can be claimed again (ABA guard), and on
 * every commit or rollback of a live reservation, so a token names one transaction only.
 */
export const SLOT_GEN_OFFSET = 1;
/** `threadId` of the thread that claimed the slot. */
export const SLOT_OWNER_OFFSET = 2;
/**
 * `GEN + 1` once the token of the current generation was read (handed over): the reservation then
 * lives by its lease, not its thread. Tagged with the generation rather than a plain 0/1 so that a
 * late write by the holder of an already released claim can never mark the next claim of the
 * slot as handed (it would then survive its owner's death). Any other value: not handed.
 */
export const SLOT_HANDED_OFFSET = 3;
/** Four words of a 128-bit random nonce, written by the claimer before it publishes RESERVED. */
export const SLOT_NONCE_OFFSET = 4;
export const SLOT_NONCE_WORDS = 4;
/** Epoch milliseconds after which the lease is over (advisory for threads; the broker enforces it). */
export const SLOT_DEADLINE_OFFSET = 8;
/**
 * The lease times the claimer asked for (ms; -1 = the config's default), written by the claimer
 * before it publishes RESERVED. The broker learns of a lock-free claim from the table itself (at
 * its first use, its release, a housekeeping tick or its thread's death), so `reserve()` sends no
 * message at all; these words, with DEADLINE, carry everything the broker needs to adopt it.
 */
export const SLOT_IDLE_OFFSET = 10;
export const SLOT_MAX_OFFSET = 11;
/** IDLE/MAX value meaning "the configured default". */
export const LEASE_DEFAULT = -1;

/** Nobody holds the slot. */
export const FREE = 0;
/**
 * A thread won the CAS and is writing owner and nonce; not yet valid. The state word of a slot
 * being claimed is `claimingState(threadId)` (CLAIMING - threadId), so the claimer is known from
 * the CAS itself. Fix: it used to be a plain 1 with OWNER written afterwards, so a thread killed
 * between its two CASes (terminate() can stop JS anywhere) left the slot CLAIMING for good, with
 * no way to tell whose it was (RELIABILITY.md §1.7: "a lock word set by a worker that then dies
 * stays set"). Now the broker frees it when that thread's death is seen.
 */
export const CLAIMING = -16;

/** The state word of a slot being claimed by `thread`. */
export function claimingState(thread: number): number {
  return CLAIMING - thread;
}

/** The claimer of a slot in state `state`, or undefined when the slot is not being claimed. */
export function claimerOf(state: number): number | undefined {
  return state <= CLAIMING ? CLAIMING - state : undefined;
}
/** Held: the token is valid while GEN matches. */
export const RESERVED = 2;
/** The broker is rolling back and freeing it; tokens are refused. */
export const RETIRING = -2;

/** Bytes needed for databases with these slot counts. */
export function tableBytes(slotCounts: readonly number[]): number {
  let words = HEADER_FIELDS;
  for (const n of slotCounts) words += DB_FIELDS + n * SLOT_STRIDE;
  return words * 4;
}

/** Int32 index of database `db`'s header. */
export function dbBase(slotCounts: readonly number[], db: number): number {
  let at = HEADER_FIELDS;
  for (let i = 0; i < db; i++) at += DB_FIELDS + slotCounts[i] * SLOT_STRIDE;
  return at;
}

/** Int32 index of slot `slot` of database `db`. */
export function slotBase(slotCounts: readonly number[], db: number, slot: number): number {
  return dbBase(slotCounts, db) + DB_FIELDS + slot * SLOT_STRIDE;
}
