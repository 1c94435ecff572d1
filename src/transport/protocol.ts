/**
 * The MessagePort protocol between threads and the broker. Types only (STYLE.md point 7).
 *
 * One port per thread. The thread sends a `hello` first; the broker answers `ready`.
 * After that every request carries an `id` and gets exactly one reply with the same `id`.
 * Both sides may post a single message or an array of them (a batch) in one `postMessage`.
 * @module
 */

/** Bumped on any incompatible change; a mismatch is refused at `hello`. */
export const PROTOCOL_VERSION = 1;

/** Key under which the wiring travels in `workerData`, and the tag of a hello on `parentPort`. */
export const WIRE_KEY = 'threadbroker:wiring';

/**
 * Smallest forwarded message or answer whose buffer is transferred rather than copied. Below it a
 * copy costs no more than a transfer, and V8 keeps small typed arrays on its heap: reaching their
 * `buffer` to transfer it would first move them out.
 */
export const TRANSFER_MIN_BYTES = 1024;

/** Key of the process-wide environment data (`worker_threads.setEnvironmentData`). */
export const ENV_KEY = 'threadbroker:env';

/** What every thread inherits through environment data: enough to check tokens without a round trip. */
export interface EnvData {
  /** The issuing broker's id (random, per `Broker.start`). */
  brokerId: string;
  /** The slot table, shared. */
  slots: SharedArrayBuffer;
  /** Database names, in slot-table row order. */
  databases: string[];
  /** Driver kind of each database, same order (the mapper picks its SQL dialect from it). */
  kinds: ('pg' | 'mysql')[];
  /** The mapped classes of the config (no secrets in them). */
  classes: Record<string, ClassInfo>;
  /** Reservation slots per database, same order. */
  slotCounts: number[];
  /** Key for token MACs; never leaves the process. */
  tokenKey: Uint8Array;
  /** Reservation lease defaults. */
  leaseIdleMillis: number;
  leaseMaxMillis: number;
  /** `maxRequestBytes` of each database, same order (0 = no limit): checked before a request leaves the thread. */
  maxRequestBytes?: number[];
  /**
   * Per database, same order: true when plain statements travel as protocol bytes the thread
   * encodes and decodes itself (`ForwardRequest`); absent or false: `QueryRequest`.
   */
  forward?: boolean[];
}

/** A mapped class as threads receive it (the config's `ClassConfig`, plain data). */
export interface ClassInfo {
  name: string;
  database: string;
  table: string;
  key: string;
  version?: string;
  attributes: Record<string, string>;
  types: Record<string, string>;
}

/** First message of a thread on its port. */
export interface HelloMessage {
  t: 'hello';
  v: number;
  /** `worker_threads.threadId` of the sender (0 for the main thread). */
  thread: number;
}

/** A reference to a reservation inside a request: its slot and generation. */
export interface ReservationRef {
  db: number;
  slot: number;
  gen: number;
}

/** A statement on a database, or on a reservation when `rs` is set. */
export interface QueryRequest {
  t: 'q';
  id: number;
  db: string;
  sql: string;
  params?: unknown[];
  rs?: ReservationRef;
}

/**
 * A plain statement the thread encoded in the database's own protocol (PostgreSQL: a Query, or
 * Bind + Describe + Execute + Sync of the unnamed statement; MySQL: a COM_QUERY, or a
 * COM_STMT_EXECUTE of statement 0 with `p` values, its 4 header bytes left for the broker). The
 * broker prepares `sql` on the connection it picks when needed and answers with the server's
 * bytes (`OkReply.w`), or asks for the statement again as a `QueryRequest` (`OkReply.q`).
 */
export interface ForwardRequest {
  t: 'fq';
  id: number;
  db: string;
  sql: string;
  m: Uint8Array;
  /** MySQL COM_STMT_EXECUTE: how many values `m` binds. */
  p?: number;
}

/** Transaction control on a reservation. */
export interface TxRequest {
  t: 'tx';
  id: number;
  rs: ReservationRef;
  op: 'begin' | 'commit' | 'rollback' | 'savepoint' | 'release-savepoint' | 'rollback-to';
  /** Savepoint name, for savepoint ops. */
  name?: string;
  isolation?: string;
  readOnly?: boolean;
}

/** Wait in the broker's FIFO for a reservation slot (the slow path of `reserve`). */
export interface ReserveWaitRequest {
  t: 'rw';
  id: number;
  db: number;
  waitMillis: number;
  idleMillis: number;
  maxMillis: number;
}

/** Announces a slot claimed in shared memory by the thread (the fast path), so leases are tracked. */
export interface ReserveClaimedRequest {
  t: 'rc';
  id: number;
  rs: ReservationRef;
  idleMillis: number;
  maxMillis: number;
}

/** Ends a reservation: roll back if needed, return the connection, free the slot. */
export interface ReleaseRequest {
  t: 'rl';
  id: number;
  rs: ReservationRef;
}

/** Everything a thread can ask. */
export type Request = QueryRequest | ForwardRequest | TxRequest | ReserveWaitRequest | ReserveClaimedRequest | ReleaseRequest;

/** A serialised `BrokerError`: only whitelisted fields, never config objects or secrets. */
export interface WireError {
  code: string;
  message: string;
  fields?: Record<string, string | number>;
}

/** A successful reply. Rows are arrays in `f` order; the thread rebuilds objects. */
export interface OkReply {
  id: number;
  f?: string[];
  r?: unknown[][];
  n?: number;
  i?: number | bigint;
  /** For a forwarded statement: the server's answer, whole messages (pg: up to ReadyForQuery; MySQL: up to the end of its last result). */
  w?: Uint8Array;
  /**
   * For a forwarded statement the connection cannot run as sent: send it again as a
   * `QueryRequest`; 2 when that holds for every later statement with this text.
   */
  q?: 1 | 2;
  /** For reserve-wait: the granted slot, generation and nonce words. */
  rs?: { slot: number; gen: number };
}

/** A failed reply. */
export interface ErrReply {
  id: number;
  e: WireError;
}

/** Every reply. */
export type Reply = OkReply | ErrReply;

/** The broker's answer to `hello`. */
export interface ReadyMessage {
  t: 'ready';
  v: number;
  /** What the thread needs to check tokens and names locally. */
  env: EnvData;
}
