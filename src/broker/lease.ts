/**
 * The broker's record of one live reservation: its claim, its connection once bound, its lease
 * times, and a queue that runs its operations in order, one at a time, so statements of one
 * reservation never interleave even when several threads use the token at once.
 * @module
 */
import type { DriverConnection } from '../drivers/driver.js';
import type { Pool } from '../pool/pool.js';
import type { SlotClaim } from '../slots/slot-table.js';
import { Errors } from '../errors.js';

/** A queued operation and how to refuse it if it never runs. */
export interface Op {
  run: () => Promise<void>;
  refuse: (err: Error) => void;
}

/** One live reservation, as the broker tracks it. */
export class Lease {
  readonly claim: SlotClaim;
  readonly pool: Pool;
  /** `threadId` of the claimer. */
  readonly owner: number;
  readonly claimedAt: number;
  lastUsed: number;
  readonly idleMillis: number;
  readonly maxMillis: number;
  conn: DriverConnection | undefined;
  /** Set when the connection died under the reservation: every use answers `TX_CONNECTION_LOST`. */
  lost: string | undefined;
  /** Set once the lease is being ended; no new operation starts. */
  ending = false;
  /** Resolves when the lease has ended and its slot is free. */
  ended: Promise<void> | undefined;
  #queue: Op[] = [];
  #running = false;
  #idleWaiters: (() => void)[] = [];

  constructor(claim: SlotClaim, pool: Pool, owner: number, idleMillis: number, maxMillis: number, now = Date.now()) {
    this.claim = claim;
    this.pool = pool;
    this.owner = owner;
    this.claimedAt = now;
    this.lastUsed = now;
    this.idleMillis = idleMillis;
    this.maxMillis = maxMillis;
  }

  /** True while an operation runs or waits. */
  get busy(): boolean {
    return this.#running || this.#queue.length > 0;
  }

  /** The epoch ms at which the lease ends if nothing happens. */
  deadline(): number {
    const absolute = this.maxMillis > 0 ? this.claimedAt + this.maxMillis : Infinity;
    const idle = this.idleMillis > 0 ? this.lastUsed + this.idleMillis : Infinity;
    return Math.min(absolute, idle);
  }

  /** Queues an operation behind the ones already queued. */
  run(op: Op): void {
    if (this.ending) {
      op.refuse(Errors.tokenExpired('the reservation is being released'));
      return;
    }
    this.#queue.push(op);
    if (!this.#running) void this.#pump();
  }

  async #pump(): Promise<void> {
    this.#running = true;
    while (this.#queue.length > 0) {
      const op = this.#queue.shift()!;
      try {
        await op.run();
      } catch {
        /* each op replies on its own; a throw here is already answered */
      }
      this.lastUsed = Date.now();
    }
    this.#running = false;
    for (const w of this.#idleWaiters.splice(0)) w();
  }

  /** Refuses every operation that has not started. */
  drain(err: () => Error): void {
    for (const op of this.#queue.splice(0)) op.refuse(err());
  }

  /** Resolves once no operation runs. */
  whenIdle(): Promise<void> {
    if (!this.#running) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }
}
