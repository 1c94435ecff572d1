/**
 * The one small contract every database kind implements (STYLE.md point 3). Only the driver
 * factory switches on the kind; the pool, the broker and the transport speak only this.
 * @module
 */
import type { DatabaseConfig, DriverKind } from '../config/types.js';

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

/** A plain statement the calling thread encoded in its database's protocol (issue 8). */
export interface ForwardStatement {
  /** The statement's text (the broker prepares it per connection when it has parameters). */
  sql: string;
  /** The thread's encoded message (see `wire/pg-wire.ts`, `wire/mysql-wire.ts`). */
  msg: Uint8Array;
  /** MySQL, for a COM_STMT_EXECUTE: the number of values bound in `msg`. */
  params?: number;
}

/**
 * A forwarded statement this connection cannot run as sent; the thread sends it again as a plain
 * `QueryRequest`, which the broker runs through the driver (MySQL: a text the server will not
 * prepare, a placeholder count that differs from the values, a statement the server dropped).
 * Never reaches users.
 */
export class NotForwarded extends Error {
  /**
   * @param lasting The reason holds for every later use of this text: the thread may skip
   *   forwarding it from now on.
   */
  constructor(readonly lasting: boolean) {
    super('the statement cannot be forwarded');
    this.name = 'NotForwarded';
  }
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
  /**
   * Runs statements the calling thread encoded in the kind's own protocol, pipelined in order,
   * and resolves each with the server's answer as bytes, for the thread to decode (issue 8: the
   * main thread frames, it does not parse). Only kinds that forward implement it.
   */
  forward?(batch: readonly ForwardStatement[]): Promise<Uint8Array>[];
  /** True when the session holds state that must be reset before another user gets it. */
  needsReset(): boolean;
  /** Rolls back an open transaction and restores session defaults. */
  reset(): Promise<void>;
  /**
   * Commits the open transaction. A connection lost while COMMIT is in flight rejects with
   * `COMMIT_OUTCOME_UNKNOWN` (with the transaction id when the kind can tell it), never with an
   * error that claims a rollback; a connection lost before COMMIT was sent rejects with `CONNECTION_LOST`.
   */
  commit?(): Promise<void>;
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

/** The per-statement limits of one database (0 = none), as every connection of its driver applies them. */
export interface StatementLimits {
  /** Deadline of a statement (`QUERY_TIMEOUT`, then the connection is destroyed). */
  readonly queryTimeoutMillis: number;
  /** Most rows of one result (`RESULT_TOO_LARGE`, then the connection is destroyed). */
  readonly maxRows: number;
  /** Most bytes of one result as received (`RESULT_TOO_LARGE`, then the connection is destroyed). */
  readonly maxResultBytes: number;
  /** Bound of the broker's own housekeeping statements (rollback, reset) when there is no statement deadline. */
  readonly connectTimeoutMillis: number;
}

/** The statement limits of a database's config. */
export function limitsOf(c: DatabaseConfig): StatementLimits {
  return { queryTimeoutMillis: c.queryTimeoutMillis, maxRows: c.maxRows, maxResultBytes: c.maxResultBytes, connectTimeoutMillis: c.connectTimeoutMillis };
}

/** Deadline of the broker's own rollback/reset statements: the statement deadline, or the connect deadline when there is none. */
export function internalDeadline(l: StatementLimits): number {
  return l.queryTimeoutMillis > 0 ? l.queryTimeoutMillis : l.connectTimeoutMillis;
}

export { isFatalSqlState } from '../wire/sql-state.js';
