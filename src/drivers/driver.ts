/**
 * The one small contract every database kind implements (STYLE.md point 3). Only the driver
 * factory switches on the kind; the pool, the broker and the transport speak only this.
 * @module
 */
import type { DriverKind } from '../config/types.js';

/**
 * A normalised result. Rows travel as arrays with the column names once: an array clones
 * ~20% cheaper than an object across a MessagePort, and the thread rebuilds objects.
 */
export interface RawResult {
  /** Column names, in order. Empty for statements that return no rows. */
  fields: string[];
  /** One array per row, values in `fields` order. */
  rows: unknown[][];
  /** Rows returned, or rows affected for INSERT/UPDATE/DELETE. */
  rowCount: number;
  /** MySQL's generated key of an INSERT (as a number, or bigint past 2^53). */
  insertId?: number | bigint;
}

/** How a transaction begins. */
export interface BeginOptions {
  isolation?: 'read uncommitted' | 'read committed' | 'repeatable read' | 'serializable';
  readOnly?: boolean;
}

/** A physical connection owned by the main thread. */
export interface DriverConnection {
  /** Broker-local sequence number of this connection. */
  readonly seq: number;
  /** The server's id for the session (PostgreSQL backend pid, MySQL connection id). */
  readonly serverId: number;
  /** Set once the connection failed in a way that makes it unusable; it is then destroyed. */
  readonly broken: boolean;
  /** Runs one statement with bound parameters. Rejects with a `BrokerError`. */
  query(sql: string, params: readonly unknown[] | undefined): Promise<RawResult>;
  /** True when the session holds state that must be reset before another user gets it. */
  needsReset(): boolean;
  /** Rolls back an open transaction and restores session defaults. */
  reset(): Promise<void>;
  /**
   * Resets all session state (settings, variables, locks, temporary tables), when the kind can do
   * it in one step; used when a reserved connection goes back to the pool. Without it the
   * driver's `reservedTeardownSql` runs.
   */
  resetSession?(): Promise<void>;
  /** Called once when the connection breaks while idle or busy (server kill, socket error). */
  onBroken(listener: (err: Error) => void): void;
  /** Graceful close; never rejects. */
  end(): Promise<void>;
  /** Immediate close of the socket. */
  destroy(): void;
}

/** One database kind: opens connections and knows its SQL dialect's transaction statements. */
export interface Driver {
  readonly kind: DriverKind;
  /** Opens one connection within the configured connect deadline. Rejects with a `BrokerError`. */
  connect(seq: number): Promise<DriverConnection>;
  /** Statements, run in order, that begin a transaction. */
  beginSql(opts?: BeginOptions): string[];
  /** Statements for savepoints. `name` is a validated identifier. */
  savepointSql(name: string): string;
  releaseSavepointSql(name: string): string;
  rollbackToSavepointSql(name: string): string;
  /** Statement run on a reserved connection to set a server-side idle-in-transaction backstop, if the kind has one. */
  backstopSql?(millis: number): string;
  /** Statement that resets session state when a reserved connection goes back to the pool, if the kind has one. */
  readonly reservedTeardownSql?: string;
  /** Frees driver-wide resources (an embedded server). */
  close(): Promise<void>;
}

const ISOLATIONS = new Set(['read uncommitted', 'read committed', 'repeatable read', 'serializable']);

/** Validates begin options; the isolation level ends up in SQL text, so only the four levels pass. */
export function checkBeginOptions(opts: BeginOptions | undefined): void {
  if (opts === undefined) return;
  if (opts.isolation !== undefined && !ISOLATIONS.has(opts.isolation)) {
    throw new TypeError(`isolation must be one of ${[...ISOLATIONS].join(', ')}`);
  }
}

/** SQLSTATE classes and codes after which a connection must not be reused (HikariCP's list). */
export function isFatalSqlState(state: string | undefined): boolean {
  if (!state) return false;
  return state.startsWith('08') || state === '57P01' || state === '57P02' || state === '57P03';
}
