/**
 * A reserved connection as a thread sees it: every statement runs on the same connection, in
 * order, until `release()`. Its `token` lets another thread (or a later HTTP request) `attach`.
 * @module
 */
import { Errors } from '../errors.js';
import type { SlotClaim, SlotTable } from '../slots/slot-table.js';
import { encodeToken } from '../slots/token.js';
import type { PortClient } from './port-client.js';
import { toResult, type QueryResult } from './result.js';
import { NO_SITE, atCaller } from './call-site.js';

/** Options of `begin`. */
export interface BeginOptions {
  /** The isolation level of the transaction. */
  isolation?: 'read uncommitted' | 'read committed' | 'repeatable read' | 'serializable';
  /** Start a read-only transaction. */
  readOnly?: boolean;
}

/**
 * An exclusively held connection.
 *
 * ```ts
 * const r = await db.reserve('main');
 * await r.begin();
 * await r.query('insert into t(v) values ($1)', ['a']);
 * const token = r.token;            // hand it to another thread or an HTTP client
 * // elsewhere: const same = await db.attach(token); await same.commit(); await same.release();
 * ```
 */
export class Reservation {
  /** The database (config name) the connection belongs to. */
  readonly database: string;
  readonly #client: PortClient;
  readonly #table: SlotTable;
  /** Mutable: commit and rollback move the reservation to a new generation (a new token). */
  #claim: SlotClaim;
  #released = false;
  #token: string | undefined;

  /** @internal Built by `Db.reserve` and `Db.attach`. */
  constructor(client: PortClient, table: SlotTable, database: string, claim: SlotClaim) {
    this.#client = client;
    this.#table = table;
    this.database = database;
    this.#claim = claim;
  }

  /**
   * The opaque token of this reservation. Reading it hands the reservation over: from then on it
   * lives by its lease (idle timeout, max lifetime), not by the thread that took it.
   * A token names one transaction: after `commit()` or `rollback()` the old token is refused
   * (`TOKEN_EXPIRED`) and this property returns a fresh one for the rest of the reservation.
   */
  get token(): string {
    if (this.#token === undefined) {
      const env = this.#client.env;
      this.#token = encodeToken(env.brokerId, env.tokenKey, this.#claim, this.#table.nonce(this.#claim.db, this.#claim.slot));
    }
    // Ordering: mark handed before the token can leave this thread, so a death right after cannot free it.
    this.#table.markHanded(this.#claim);
    return this.#token;
  }

  /** True once released here, or once the broker retired it (lease expiry, close). */
  get released(): boolean {
    return this.#released || !this.#table.isLive(this.#claim);
  }

  #ref(): { db: number; slot: number; gen: number } {
    return { db: this.#claim.db, slot: this.#claim.slot, gen: this.#claim.gen };
  }

  /** `TOKEN_EXPIRED` once released here; thrown in the caller's synchronous run, so its stack is the caller's. */
  #guard(): void {
    if (this.#released) throw Errors.tokenExpired('this reservation was released');
  }

  /** Runs one statement on the reserved connection. */
  async query<R = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<QueryResult<R>> {
    if (typeof sql !== 'string') throw Errors.invalidArgument('sql must be a string');
    if (params !== undefined && !Array.isArray(params)) throw Errors.invalidArgument('params must be an array');
    this.#guard();
    const reply = await this.#client.request({ t: 'q', db: this.database, sql, params: params as unknown[] | undefined, rs: this.#ref() }, NO_SITE).catch(atCaller);
    return toResult<R>(reply);
  }

  async #tx(op: 'begin' | 'commit' | 'rollback' | 'savepoint' | 'release-savepoint' | 'rollback-to', extra: { name?: string; isolation?: string; readOnly?: boolean }): Promise<void> {
    this.#guard();
    const reply = await this.#client.request({ t: 'tx', op, rs: this.#ref(), ...extra }, NO_SITE).catch(atCaller);
    if (reply.rs !== undefined && reply.rs.slot === this.#claim.slot) {
      // Commit/rollback started a new generation (see Reservations.#tx): follow it, and forget
      // the old token; reading `token` again yields (and hands over) the new one.
      this.#claim = { db: this.#claim.db, slot: this.#claim.slot, gen: reply.rs.gen };
      this.#token = undefined;
    }
  }

  /** Begins a transaction (`begin({ isolation: 'serializable', readOnly: true })`). */
  begin(opts: BeginOptions = {}): Promise<void> {
    return this.#tx('begin', { isolation: opts.isolation, readOnly: opts.readOnly });
  }

  /** Commits the open transaction. Tokens read before are refused from now on; `token` gives a new one. */
  commit(): Promise<void> {
    return this.#tx('commit', {});
  }

  /** Rolls back the open transaction. Tokens read before are refused from now on; `token` gives a new one. */
  rollback(): Promise<void> {
    return this.#tx('rollback', {});
  }

  /** Sets a savepoint inside the open transaction; `name` is an identifier (`[A-Za-z_][A-Za-z0-9_]*`). */
  savepoint(name: string): Promise<void> {
    return this.#tx('savepoint', { name });
  }

  /** Releases (forgets) a savepoint. */
  releaseSavepoint(name: string): Promise<void> {
    return this.#tx('release-savepoint', { name });
  }

  /** Rolls back to a savepoint, keeping the transaction open. */
  rollbackTo(name: string): Promise<void> {
    return this.#tx('rollback-to', { name });
  }

  /**
   * Ends the reservation: an open transaction is rolled back, the connection goes back to the
   * pool and the token is refused from then on (`TOKEN_EXPIRED`). A second call throws `TOKEN_EXPIRED`.
   */
  async release(): Promise<void> {
    this.#guard();
    this.#released = true;
    await this.#client.request({ t: 'rl', rs: this.#ref() }, NO_SITE).catch(atCaller);
  }
}
