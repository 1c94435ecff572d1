/**
 * Every error threadbroker throws is a {@link BrokerError} with a stable {@link ErrorCode}.
 * Callers branch on `err.code`, never on the message text.
 *
 * ```ts
 * try { await db.query('main', 'select 1') }
 * catch (err) { if (err instanceof BrokerError && err.code === 'ACQUIRE_TIMEOUT') retryLater() }
 * ```
 * @module
 */

/** The stable error codes. A new code may be added; an existing one never changes meaning. */
export type ErrorCode =
  | 'CONFIG_INVALID'
  | 'UNKNOWN_DATABASE'
  | 'UNKNOWN_CLASS'
  | 'ACQUIRE_TIMEOUT'
  | 'QUEUE_FULL'
  | 'TOKEN_INVALID'
  | 'TOKEN_EXPIRED'
  | 'TOKEN_FOREIGN'
  | 'RESERVATION_BUSY'
  | 'POOL_DEADLOCK'
  | 'BROKER_CLOSED'
  | 'CONNECTION_LOST'
  | 'TX_CONNECTION_LOST'
  | 'DATABASE_ERROR'
  | 'VERSION_CONFLICT'
  | 'IDENTIFIER_INVALID'
  | 'INVALID_ARGUMENT'
  | 'NOT_WIRED'
  | 'THREAD_EXITED'
  | 'QUERY_TIMEOUT'
  | 'RESULT_TOO_LARGE'
  | 'REQUEST_TOO_LARGE'
  | 'COMMIT_OUTCOME_UNKNOWN';

/** Server-side fields kept on a `DATABASE_ERROR` (and on connection errors when known). */
export interface DatabaseErrorFields {
  /** SQLSTATE (PostgreSQL `code`, MySQL `sqlState`). */
  sqlState?: string;
  /** MySQL/MariaDB numeric error number. */
  errno?: number;
  /** The driver's symbolic code (`ER_DUP_ENTRY`), or PostgreSQL's SQLSTATE. */
  driverCode?: string;
  /** PostgreSQL `detail`. */
  detail?: string;
  /** PostgreSQL `hint`. */
  hint?: string;
  /** The violated constraint, when the server names it. */
  constraint?: string;
  /** Table, column and schema, when the server names them. */
  table?: string;
  column?: string;
  schema?: string;
  /** 1-based character position of the error in the SQL text (PostgreSQL). */
  position?: string;
  /** The database (config name) the statement ran on. */
  database?: string;
  /**
   * PostgreSQL transaction id (`xid8` as text) of a `COMMIT_OUTCOME_UNKNOWN`: look its outcome up
   * with `select pg_xact_status($1::xid8)` (or `txid_status($1::bigint)`) once the server is reachable.
   */
  xid?: string;
}

/**
 * The one error class of threadbroker. `code` is stable; `message` says what happened and,
 * for pool errors, the pool's state at that moment. Never carries config objects or secrets.
 *
 * ```ts
 * if (err instanceof BrokerError && err.code === 'DATABASE_ERROR') console.log(err.sqlState)
 * ```
 */
export class BrokerError extends Error implements DatabaseErrorFields {
  /** The stable code to branch on. */
  readonly code: ErrorCode;
  sqlState?: string;
  errno?: number;
  driverCode?: string;
  detail?: string;
  hint?: string;
  constraint?: string;
  table?: string;
  column?: string;
  schema?: string;
  position?: string;
  database?: string;
  xid?: string;

  /**
   * @param code the stable code
   * @param message what happened, with context
   * @param fields server fields for database errors
   * @param options `cause` — kept only on the thread where it happened, never sent across ports
   */
  constructor(code: ErrorCode, message: string, fields?: DatabaseErrorFields, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    if (fields) {
      for (const key of FIELD_KEYS) {
        const v = fields[key];
        if (v !== undefined) (this as Record<string, unknown>)[key] = v;
      }
    }
  }

  override get name(): string {
    return 'BrokerError';
  }
}

/** The whitelist of fields that may cross a thread boundary. */
export const FIELD_KEYS: readonly (keyof DatabaseErrorFields)[] = Object.freeze([
  'sqlState', 'errno', 'driverCode', 'detail', 'hint', 'constraint', 'table', 'column', 'schema', 'position', 'database', 'xid',
]);

/** A snapshot of one pool, put in the message of pool errors (HikariCP style). */
export interface PoolState {
  max: number;
  open: number;
  idle: number;
  busy: number;
  waiting: number;
}

function describe(db: string, s: PoolState): string {
  return `pool=${db}, max=${s.max}, open=${s.open}, idle=${s.idle}, busy=${s.busy}, waiting=${s.waiting}`;
}

/**
 * Factory of errors: each call builds a fresh error, so each throw has its own stack.
 */
export const Errors = {
  configInvalid: (message: string) => new BrokerError('CONFIG_INVALID', message),
  unknownDatabase: (name: string, known: readonly string[]) =>
    new BrokerError('UNKNOWN_DATABASE', `unknown database ${JSON.stringify(name)}; configured: ${known.join(', ') || '(none)'}`),
  unknownClass: (name: string, known: readonly string[]) =>
    new BrokerError('UNKNOWN_CLASS', `unknown class ${JSON.stringify(name)}; configured: ${known.join(', ') || '(none)'}`),
  acquireTimeout: (db: string, millis: number, s: PoolState) =>
    new BrokerError('ACQUIRE_TIMEOUT', `no connection available within ${millis}ms (${describe(db, s)})`, { database: db }),
  reserveTimeout: (db: string, millis: number, reserved: number, maxReserved: number) =>
    new BrokerError('ACQUIRE_TIMEOUT', `no reservation slot free within ${millis}ms (database=${db}, reserved=${reserved}, maxReserved=${maxReserved})`, { database: db }),
  queueFull: (db: string, limit: number, s: PoolState) =>
    new BrokerError('QUEUE_FULL', `acquire queue is full at its limit of ${limit} (${describe(db, s)})`, { database: db }),
  brokerClosed: () => new BrokerError('BROKER_CLOSED', 'the broker is closed and accepts no new work'),
  connectionLost: (db: string, why: string, cause?: unknown) =>
    new BrokerError('CONNECTION_LOST', `connection to database ${db} lost: ${why}`, { database: db }, { cause }),
  txConnectionLost: (db: string, why: string) =>
    new BrokerError('TX_CONNECTION_LOST', `the reserved connection to database ${db} was lost (${why}); its transaction is rolled back by the server`, { database: db }),
  tokenInvalid: (why: string) => new BrokerError('TOKEN_INVALID', `reservation token refused: ${why}`),
  tokenExpired: (why: string) => new BrokerError('TOKEN_EXPIRED', `reservation token no longer valid: ${why}`),
  tokenForeign: (issuer: string, self: string) =>
    new BrokerError('TOKEN_FOREIGN', `reservation token was issued by broker ${issuer}, not by this broker (${self}); route the request to its issuer`),
  reservationBusy: (why: string) => new BrokerError('RESERVATION_BUSY', why),
  poolDeadlock: (db: string, s: PoolState) =>
    new BrokerError('POOL_DEADLOCK', `this thread holds a reservation on ${db} and asked for another connection while none is free; run the query through the reservation (${describe(db, s)})`, { database: db }),
  invalidArgument: (message: string) => new BrokerError('INVALID_ARGUMENT', message),
  notWired: (message: string) => new BrokerError('NOT_WIRED', message),
  threadExited: (message: string) => new BrokerError('THREAD_EXITED', message),
  identifierInvalid: (message: string) => new BrokerError('IDENTIFIER_INVALID', message),
  versionConflict: (message: string) => new BrokerError('VERSION_CONFLICT', message),
  queryTimeout: (db: string, millis: number) =>
    new BrokerError('QUERY_TIMEOUT', `the statement did not complete within queryTimeoutMillis = ${millis}ms on database ${db}; its connection was closed (the server may still finish it)`, { database: db }),
  resultTooLarge: (db: string, what: string) =>
    new BrokerError('RESULT_TOO_LARGE', `the result exceeds ${what} on database ${db}; its connection was closed to stop the transfer (add a LIMIT, or page through the rows)`, { database: db }),
  requestTooLarge: (db: string, bytes: number, limit: number) =>
    new BrokerError('REQUEST_TOO_LARGE', `the statement and its parameters take more than maxRequestBytes = ${limit} bytes (at least ${bytes}) for database ${db}; it was not sent`, { database: db }),
  commitOutcomeUnknown: (db: string, why: string, xid: string | undefined) =>
    new BrokerError('COMMIT_OUTCOME_UNKNOWN', `the connection to database ${db} was lost while COMMIT was in flight (${why}); the transaction may or may not have committed${xid === undefined ? '' : `: look up transaction ${xid} (pg_xact_status)`}; do not retry it blindly`, { database: db, xid }),
} as const;
