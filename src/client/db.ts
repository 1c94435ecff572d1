/**
 * The client API, the same in every thread: plain queries, database handles, reservations,
 * tokens and transactions.
 * @module
 */
import { threadId } from 'node:worker_threads';
import { BrokerError, Errors } from '../errors.js';
import { SlotTable } from '../slots/slot-table.js';
import { verifyToken } from '../slots/token.js';
import type { PortClient } from './port-client.js';
import { Reservation, type BeginOptions } from './reservation.js';
import { toResult, type QueryResult } from './result.js';
import { modelOf } from '../mapper/mapper-context.js';
import { Forwarding } from './forwarding.js';
import { NO_SITE, atCaller } from './call-site.js';
import type { Model } from '../mapper/model.js';

/** Options of `reserve`. Lease defaults come from `reservations` in the config. */
export interface ReserveOptions {
  /** Longest wait for a free slot when all are taken (`ACQUIRE_TIMEOUT`); default: the database's `acquireTimeoutMillis`. */
  waitMillis?: number;
  /** The reservation is rolled back and freed after this long unused. 0 = never. */
  idleTimeoutMillis?: number;
  /** The reservation is rolled back and freed this long after it was taken. 0 = never. */
  maxLifetimeMillis?: number;
}

/** Options of `transaction`. */
export interface TransactionOptions extends ReserveOptions, BeginOptions {
  /** Extra attempts after a serialization failure or deadlock (SQLSTATE 40001/40P01, MySQL 1213). Default 0. */
  retries?: number;
}

/** A handle on one database: the same calls without repeating its name. */
export interface DatabaseHandle {
  /** The database's name in the config. */
  readonly name: string;
  /** Runs one statement on any pooled connection of this database. */
  query<R = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<QueryResult<R>>;
  /** Reserves one connection of this database. */
  reserve(opts?: ReserveOptions): Promise<Reservation>;
  /** Runs `fn` in a transaction on this database. */
  transaction<T>(fn: (tx: Reservation) => Promise<T>, opts?: TransactionOptions): Promise<T>;
}

function checkMillis(name: string, v: unknown): number {
  if (v === undefined) return NaN;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 2_147_483_647) {
    throw Errors.invalidArgument(`${name} must be an integer number of milliseconds between 0 and 2147483647`);
  }
  return v;
}

function isRetryable(err: unknown): boolean {
  return err instanceof BrokerError && (err.sqlState === '40001' || err.sqlState === '40P01' || err.errno === 1213);
}

/**
 * A connected client. Get one with `connect()` in any thread (or `broker.connect()` in the main thread).
 *
 * ```ts
 * const db = await connect();
 * const { rows } = await db.query('main', 'select $1::int as x', [1]);
 * ```
 */
export class Db {
  readonly #client: PortClient;
  readonly #table: SlotTable;
  readonly #dbIndex: Map<string, number>;
  readonly #handles = new Map<string, DatabaseHandle>();
  readonly #forwarding: Forwarding;

  /** @internal Built by `connect()`. */
  constructor(client: PortClient) {
    this.#client = client;
    this.#table = new SlotTable(client.env.slotCounts, client.env.slots);
    this.#dbIndex = new Map(client.env.databases.map((name, i) => [name, i]));
    this.#forwarding = new Forwarding(client);
  }

  /** The configured database names. */
  get databases(): readonly string[] {
    return this.#client.env.databases;
  }

  /**
   * The mapper's model of a class from the config's `classes`: CRUD on the class's own database,
   * `in(reservation)` for transactions, `onChange` for notices from other threads.
   *
   * ```ts
   * interface User { id: number; name: string; email: string | null; version: number }
   * const users = db.model<User>('User');
   * const u = await users.insert({ name: 'Ada', email: 'ada@example.org' });
   * ```
   * @throws BrokerError `UNKNOWN_CLASS` for a name the config does not map
   */
  model<T extends object = Record<string, unknown>>(name: string): Model<T> {
    return modelOf<T>(this, this.#client.env, name);
  }

  #index(database: string): number {
    const i = typeof database === 'string' ? this.#dbIndex.get(database) : undefined;
    if (i === undefined) throw Errors.unknownDatabase(String(database), this.#client.env.databases);
    return i;
  }

  /**
   * Runs one statement on a pooled connection of `database`. Placeholders are the driver's own:
   * `$1` on PostgreSQL, `?` on MySQL. Values are always bound, never spliced into the SQL.
   */
  query<R = Record<string, unknown>>(database: string, sql: string, params?: readonly unknown[]): Promise<QueryResult<R>> {
    let i: number;
    try {
      i = this.#index(database);
      if (typeof sql !== 'string') throw Errors.invalidArgument('sql must be a string');
      if (params !== undefined && !Array.isArray(params)) throw Errors.invalidArgument('params must be an array');
    } catch (err) {
      return Promise.reject(err);
    }
    const env = this.#client.env;
    // The caller's stack is taken only when the statement fails, as `pg` does (atCaller): taking
    // it for every statement cost ~6 µs of the calling thread's CPU per query (issue 8).
    if (env.forward?.[i] === true) return this.#forwarding.query<R>(env.kinds[i], database, sql, params).catch(atCaller);
    return this.#client.request({ t: 'q', db: database, sql, params: params as unknown[] | undefined }, NO_SITE).then((r) => toResult<R>(r), atCaller);
  }

  /** A handle on one database (`db.database('main').query('select 1')`). */
  database(name: string): DatabaseHandle {
    this.#index(name);
    let h = this.#handles.get(name);
    if (h === undefined) {
      h = {
        name,
        query: (sql, params) => this.query(name, sql, params),
        reserve: (opts) => this.reserve(name, opts),
        transaction: (fn, opts) => this.transaction(name, fn, opts),
      };
      this.#handles.set(name, h);
    }
    return h;
  }

  /**
   * Reserves one connection of `database` exclusively. A free slot is claimed in shared memory
   * without a round trip; when all are taken, the call waits in the broker's FIFO up to `waitMillis`.
   */
  async reserve(database: string, opts: ReserveOptions = {}): Promise<Reservation> {
    const db = this.#index(database);
    const waitMillis = checkMillis('waitMillis', opts.waitMillis);
    const idleMillis = checkMillis('idleTimeoutMillis', opts.idleTimeoutMillis);
    const maxMillis = checkMillis('maxLifetimeMillis', opts.maxLifetimeMillis);
    // Fix: a closed client must not claim a slot in shared memory that no broker will ever track.
    if (this.#client.closed) throw Errors.brokerClosed();
    const env = this.#client.env;
    const idle = Number.isNaN(idleMillis) ? env.leaseIdleMillis : idleMillis;
    const max = Number.isNaN(maxMillis) ? env.leaseMaxMillis : maxMillis;
    // The lease times go into the slot with the claim: the broker adopts the claim from the table
    // (at its first use, its release, the next housekeeping tick or this thread's death).
    // Fix (performance): this path used to capture a call-site stack (~4 µs) and post an
    // announcement (`rc`) whose reply the thread then processed; with the nonce fill (~4 µs, see
    // slot-table.ts) reserve() cost ~17 µs, twice a port round trip (benchmarks/reserve.mjs).
    // Now it sends nothing and costs ~1 µs; the stack is captured only when the call must wait.
    const claim = this.#table.claim(db, threadId, Date.now() + Math.min(idle || Infinity, max || Infinity, 8.64e15), true, { idleMillis, maxMillis });
    if (claim !== undefined) return new Reservation(this.#client, this.#table, database, claim);
    const site: { stack?: string } = {};
    Error.captureStackTrace(site, this.reserve);
    const reply = await this.#client.request({ t: 'rw', db, waitMillis, idleMillis, maxMillis }, site);
    const rs = reply.rs!;
    return new Reservation(this.#client, this.#table, database, { db, slot: rs.slot, gen: rs.gen });
  }

  /**
   * Takes over a reservation by its token, in any thread: the same connection and the same open
   * transaction. Forged or malformed tokens get `TOKEN_INVALID`, released or expired ones
   * `TOKEN_EXPIRED`, both decided without any database traffic.
   */
  async attach(token: string): Promise<Reservation> {
    const env = this.#client.env;
    const claim = verifyToken(token, env.brokerId, env.tokenKey, this.#table);
    return new Reservation(this.#client, this.#table, env.databases[claim.db], claim);
  }

  /**
   * Reserves, begins, runs `fn`, commits when it returns and rolls back when it throws, then
   * releases. With `retries`, a serialization failure or deadlock runs `fn` again.
   *
   * ```ts
   * await db.transaction('main', async (tx) => { await tx.query('update t set v = v + 1') });
   * ```
   */
  async transaction<T>(database: string, fn: (tx: Reservation) => Promise<T>, opts: TransactionOptions = {}): Promise<T> {
    if (typeof fn !== 'function') throw Errors.invalidArgument('transaction needs a function');
    const retries = opts.retries ?? 0;
    if (!Number.isInteger(retries) || retries < 0 || retries > 100) throw Errors.invalidArgument('retries must be an integer between 0 and 100');
    for (let attempt = 0; ; attempt++) {
      const tx = await this.reserve(database, opts);
      try {
        await tx.begin({ isolation: opts.isolation, readOnly: opts.readOnly });
        const out = await fn(tx);
        await tx.commit();
        return out;
      } catch (err) {
        if (!tx.released) await tx.rollback().catch(() => undefined);
        if (attempt < retries && isRetryable(err)) continue;
        throw err;
      } finally {
        if (!tx.released) await tx.release().catch(() => undefined);
      }
    }
  }

  /** Closes this thread's connection to the broker. Pending requests reject with `BROKER_CLOSED`. */
  close(): void {
    this.#client.close();
  }
}
