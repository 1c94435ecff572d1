/**
 * PostgreSQL through `pg`. Connections are plain `pg.Client`s owned by our pool: pg-pool would
 * add a second queue and a second cap, and would hand clients back mid-transaction.
 * @module
 */
import type { Duplex } from 'node:stream';
import pg from 'pg';
import type { DatabaseConfig } from '../../config/types.js';
import { BrokerError, Errors } from '../../errors.js';
import type { BeginOptions, Driver, DriverConnection, RawResult, StatementLimits } from '../driver.js';
import { checkBeginOptions, internalDeadline, limitsOf } from '../driver.js';
import { pgTypes, utcDateParams } from '../../wire/pg-types.js';
import { pgError, type PgServerError } from '../../wire/pg-error.js';
import { renameStatement, statementName } from './pg-statements.js';
import { PgForwarder, type ForwardStatement } from './pg-forward.js';

/** The structural subset of a `pg` Query we use: a submittable with a callback and a per-row hook. */
interface PgQuery {
  callback?: (err: Error | null, res?: pg.QueryResult<unknown[]> | pg.QueryResult<unknown[]>[]) => void;
  handleDataRow(msg: { length: number }): void;
}
const PgQueryClass = (pg as unknown as { Query: new (config: { name?: string; text: string; values?: unknown[]; rowMode: 'array' }) => PgQuery }).Query;

/** Reads the transaction id without assigning one (a transaction that wrote nothing has none). */
const XID_SQL = 'select txid_current_if_assigned()::text';

class PgConnection implements DriverConnection {
  readonly seq: number;
  serverId = 0;
  broken = false;
  readonly #client: pg.Client;
  readonly #db: string;
  readonly #limits: StatementLimits;
  #brokenListener: ((err: Error) => void) | undefined;
  /** Statements waiting for the server's ReadyForQuery after an error: a lost connection must settle them. */
  readonly #inflight = new Set<(err: BrokerError) => void>();
  #forwarder: PgForwarder | undefined;
  /** Transaction status after the last forwarded statement; pg's own record is stale until pg runs one again. */
  #forwardedStatus: string | undefined;

  constructor(seq: number, client: pg.Client, db: string, limits: StatementLimits) {
    this.seq = seq;
    this.#client = client;
    this.#db = db;
    this.#limits = limits;
    // An idle client whose backend is killed emits 'error'; without a listener that would crash
    // the process (pg #1324). Mark it broken so the pool never hands it out again.
    client.on('error', (err) => this.#markBroken(err));
    client.on('end', () => this.#markBroken(new Error('connection ended')));
  }

  #markBroken(err: Error): void {
    if (this.broken) return;
    this.broken = true;
    for (const fail of [...this.#inflight]) fail(Errors.connectionLost(this.#db, err.message));
    const l = this.#brokenListener;
    this.#brokenListener = undefined;
    l?.(err);
  }

  /** Installs forwarding under pg's parser, once the session is up (see pg-forward.ts). */
  enableForwarding(): void {
    const stream = (this.#client as unknown as { connection: { stream: Duplex } }).connection.stream;
    this.#forwarder = new PgForwarder(stream, {
      isBroken: () => this.broken,
      preparedStatements: () => this.#preparedStatements(),
      setTransactionStatus: (status) => { this.#forwardedStatus = status; },
      abort: (err) => {
        this.#markBroken(err);
        this.destroy();
      },
      track: (fail) => {
        this.#inflight.add(fail);
        return () => this.#inflight.delete(fail);
      },
    }, this.#db, this.#limits);
  }

  forward(batch: readonly ForwardStatement[]): Promise<Uint8Array>[] {
    if (this.#forwarder === undefined) return batch.map(() => Promise.reject(new BrokerError('INVALID_ARGUMENT', 'forwarding is not enabled on this connection')));
    return this.#forwarder.forward(batch);
  }

  onBroken(listener: (err: Error) => void): void {
    this.#brokenListener = listener;
  }

  async query(sql: string, params: readonly unknown[] | undefined): Promise<RawResult> {
    // Statements with parameters run as named prepared statements: the server parses and plans
    // them once per connection instead of once per call (+28% on point selects here).
    const name = params !== undefined && params.length > 0 ? statementName(sql) : undefined;
    try {
      return await this.#statement(sql, params, this.#limits.queryTimeoutMillis, name);
    } catch (err) {
      // Fix: when pg refuses a value before sending it (a circular object), it closes the named
      // statement on the server but keeps it listed as prepared on this connection, so every later
      // use of that text failed with "prepared statement … does not exist". Give the text a new name.
      if (name !== undefined && err instanceof BrokerError && err.code === 'INVALID_ARGUMENT') {
        renameStatement(sql);
        delete this.#preparedStatements()[name];
        throw err;
      }
      // After DDL changed a table's row type, PostgreSQL refuses the old plan (0A000, "cached plan
      // must not change result type"). Outside a transaction the statement had no effect: prepare
      // it again under a fresh name and run it once more. Inside one, the error stands.
      if (name !== undefined && err instanceof BrokerError && err.sqlState === '0A000' && /cached plan/.test(err.message) && !this.needsReset()) {
        return this.#statement(sql, params, this.#limits.queryTimeoutMillis, renameStatement(sql));
      }
      throw err;
    }
  }

  /**
   * Runs one statement under the connection's limits. Fix (RELIABILITY.md F6, S6): a statement
   * stuck on a dead network (no FIN, no RST) waited forever, and a huge result was held whole in
   * the main thread before anyone could refuse it. Now a deadline and a per-row check end the
   * statement: the caller gets QUERY_TIMEOUT / RESULT_TOO_LARGE at once and the connection is
   * destroyed (the server may still be running or sending; the session must not be reused).
   */
  #statement(sql: string, params: readonly unknown[] | undefined, timeoutMillis: number, name?: string): Promise<RawResult> {
    // pg reads the status of this statement's ReadyForQuery from here on.
    this.#forwardedStatus = undefined;
    return new Promise<RawResult>((resolve, reject) => {
      let settled = false;
      let timer: NodeJS.Timeout | undefined;
      const settle = (err: BrokerError | undefined, res?: RawResult): void => {
        if (settled) return;
        settled = true;
        if (timer !== undefined) clearTimeout(timer);
        if (err !== undefined) reject(err);
        else resolve(res!);
      };
      const q = new PgQueryClass(name === undefined
        ? { text: sql, values: utcDateParams(params), rowMode: 'array' }
        : { name, text: sql, values: utcDateParams(params), rowMode: 'array' });
      const { maxRows, maxResultBytes } = this.#limits;
      if (maxRows > 0 || maxResultBytes > 0) {
        let rows = 0;
        let bytes = 0;
        const next = q.handleDataRow;
        q.handleDataRow = (msg) => {
          if (settled) return; // aborted: the rest of the transfer is dropped unparsed
          rows++;
          bytes += msg.length;
          if (maxRows > 0 && rows > maxRows) this.#abort(settle, Errors.resultTooLarge(this.#db, `maxRows = ${maxRows}`));
          else if (maxResultBytes > 0 && bytes > maxResultBytes) this.#abort(settle, Errors.resultTooLarge(this.#db, `maxResultBytes = ${maxResultBytes}`));
          else next.call(q, msg);
        };
      }
      q.callback = (err, r) => {
        if (!err) {
          settle(undefined, toRaw(r!));
          return;
        }
        const out = this.#failure(err);
        if (out.code === 'DATABASE_ERROR' && this.#awaitingReady()) {
          // Fix: pg answers at the ErrorResponse, which the server flushes before its
          // ReadyForQuery; when the two arrived in separate reads, the pool read the transaction
          // status before it changed and handed a connection still in the failed transaction
          // ('current transaction is aborted') to the next user. Answer once the status is known.
          const fail = (e: BrokerError): void => {
            this.#inflight.delete(fail);
            settle(e);
          };
          this.#inflight.add(fail);
          this.#pgConnection().once('readyForQuery', () => fail(out));
          return;
        }
        settle(out);
      };
      if (timeoutMillis > 0) timer = setTimeout(() => this.#abort(settle, Errors.queryTimeout(this.#db, timeoutMillis)), timeoutMillis);
      this.#client.query(q as unknown as pg.Submittable);
    });
  }

  /** Ends a statement early: its caller gets `err`, the connection is destroyed. */
  #abort(settle: (err: BrokerError) => void, err: BrokerError): void {
    settle(err);
    this.#markBroken(err);
    this.destroy();
  }

  /** What a failed statement answers, and whether the session survived it. */
  #failure(err: unknown): BrokerError {
    const out = pgError(this.#db, err, false);
    if (out.code === 'CONNECTION_LOST') {
      this.#markBroken(err as Error);
      return out;
    }
    if (!(err as PgServerError)?.severity) {
      // A non-server error (socket reset, "Connection terminated") means the session is gone...
      if (this.broken || !this.#queryable()) {
        this.#markBroken(err as Error);
        return Errors.connectionLost(this.#db, out.message, err);
      }
      // Fix: ...unless pg refused the statement before sending it (a value it cannot serialise,
      // e.g. a circular object): pg then closes the statement and syncs, and the session is fine.
      // That used to answer CONNECTION_LOST and throw a healthy connection away.
      return new BrokerError('INVALID_ARGUMENT', `the statement was refused before it was sent: ${out.message}`, { database: this.#db });
    }
    return out;
  }

  /**
   * COMMIT, reporting an unknown outcome as such. Fix (RELIABILITY.md F2): a connection lost while
   * COMMIT was in flight answered TX_CONNECTION_LOST ("rolled back by the server"), but the server
   * may have committed before the reply was lost, so a caller that retried wrote twice. The
   * transaction's id is read first (one round trip, only for a transaction that wrote), so the
   * outcome can be looked up later with pg_xact_status.
   */
  async commit(): Promise<void> {
    if (this.#client.getTransactionStatus() !== 'T') {
      // Not in a live transaction ('E' rolls back, 'I' does nothing): the outcome is known.
      await this.query('COMMIT', undefined);
      return;
    }
    const r = await this.query(XID_SQL, undefined);
    const xid = r.rows[0]?.[0];
    try {
      await this.query('COMMIT', undefined);
    } catch (err) {
      // Without an id the transaction wrote nothing: whatever happened, nothing was lost.
      if (typeof xid === 'string' && err instanceof BrokerError && (err.code === 'CONNECTION_LOST' || err.code === 'QUERY_TIMEOUT')) {
        throw Errors.commitOutcomeUnknown(this.#db, err.message, xid);
      }
      throw err;
    }
  }

  /** True while pg waits for the server's ReadyForQuery (pg's own flag); the transaction status is stale until then. */
  #awaitingReady(): boolean {
    return !this.broken && this.#queryable() && (this.#client as unknown as { readyForQuery?: boolean }).readyForQuery === false;
  }

  /** pg's record of the named statements this connection prepared (its own bookkeeping). */
  #preparedStatements(): Record<string, string> {
    return (this.#client as unknown as { connection: { parsedStatements?: Record<string, string> } }).connection.parsedStatements ?? {};
  }

  /** pg's protocol connection (an EventEmitter of backend messages). */
  #pgConnection(): { once(event: 'readyForQuery', listener: () => void): unknown } {
    return (this.#client as unknown as { connection: { once(event: 'readyForQuery', listener: () => void): unknown } }).connection;
  }

  /** False once pg has given up on the session (socket error or end); pg's own flags. */
  #queryable(): boolean {
    const c = this.#client as unknown as { _queryable?: boolean; _ending?: boolean };
    return c._queryable !== false && c._ending !== true;
  }

  needsReset(): boolean {
    // 'I' = idle outside a transaction; 'T' in one; 'E' in a failed one.
    const s = this.#forwardedStatus ?? this.#client.getTransactionStatus?.();
    return s !== 'I' && s !== null && s !== undefined;
  }

  async reset(): Promise<void> {
    // Housekeeping is bounded even without queryTimeoutMillis: a reset stuck on a dead network must not hold its slot.
    await this.#statement('ROLLBACK', undefined, internalDeadline(this.#limits));
  }

  /** Restores session defaults (`RESET ALL`) when a reserved connection goes back to the pool; bounded like `reset`. */
  async resetSession(): Promise<void> {
    await this.#statement('RESET ALL', undefined, internalDeadline(this.#limits));
  }

  async end(): Promise<void> {
    this.broken = true;
    try {
      await this.#client.end();
    } catch {
      /* the socket is already gone: nothing to do */
    }
  }

  destroy(): void {
    this.broken = true;
    // pg has no public destroy; ending the stream is the hard close.
    const conn = (this.#client as unknown as { connection?: { stream?: { destroy(): void } } }).connection;
    conn?.stream?.destroy();
    this.#client.end().catch(() => undefined);
  }
}

/** A pg result as the broker's RawResult. A multi-statement simple query returns an array of results; the last one is the answer. */
function toRaw(r: pg.QueryResult<unknown[]> | pg.QueryResult<unknown[]>[]): RawResult {
  const res = Array.isArray(r) ? r[r.length - 1] : r;
  const fields = res.fields ? res.fields.map((f) => f.name) : [];
  return { fields, rows: res.rows ?? [], rowCount: res.rowCount ?? res.rows?.length ?? 0 };
}

/** PostgreSQL driver over `pg.Client`. */
export class PgDriver implements Driver {
  readonly kind = 'pg' as const;
  // A reservation may SET session parameters (search_path, the backstop timeout); plain queries must not inherit them.
  readonly reservedTeardownSql = 'RESET ALL';
  readonly #config: DatabaseConfig;
  readonly #connectionOptions: () => pg.ClientConfig;

  constructor(config: DatabaseConfig, endpoint?: () => { host: string; port: number; user: string; password: string; database: string }) {
    this.#config = config;
    this.#connectionOptions = () => {
      const base: pg.ClientConfig = {
        application_name: 'threadbroker',
        connectionTimeoutMillis: config.connectTimeoutMillis,
        keepAlive: true,
        // Value types aligned with the MySQL driver (see pg-types.ts).
        types: pgTypes,
      };
      if (endpoint) return { ...base, ...endpoint() };
      if (config.url !== undefined) return { ...base, connectionString: config.url };
      return { ...base, host: config.host, port: config.port, user: config.user, password: config.password, database: config.database };
    };
  }

  async connect(seq: number): Promise<DriverConnection> {
    const client = new pg.Client(this.#connectionOptions());
    // Until the PgConnection installs its own handler, a socket error must not crash the process.
    const early = (): void => undefined;
    client.on('error', early);
    try {
      await client.connect();
    } catch (err) {
      client.end().catch(() => undefined);
      throw Errors.connectionLost(this.#config.name, `cannot connect: ${pgError(this.#config.name, err, true).message}`, err);
    }
    client.off('error', early);
    const conn = new PgConnection(seq, client, this.#config.name, limitsOf(this.#config));
    // Only when threads forward: `forwardStatements: false` is the way around the socket takeover.
    if (this.#config.forwardStatements) {
      try {
        conn.enableForwarding();
      } catch (err) {
        conn.destroy();
        throw Errors.connectionLost(this.#config.name, `cannot forward statements on this connection: ${(err as Error).message}`, err);
      }
    }
    conn.serverId = (client as unknown as { processID?: number }).processID ?? 0;
    return conn;
  }

  beginSql(opts?: BeginOptions): string[] {
    checkBeginOptions(opts);
    let sql = 'BEGIN';
    if (opts?.isolation) sql += ` ISOLATION LEVEL ${opts.isolation.toUpperCase()}`;
    if (opts?.readOnly) sql += ' READ ONLY';
    return [sql];
  }

  savepointSql(name: string): string { return `SAVEPOINT "${name}"`; }
  releaseSavepointSql(name: string): string { return `RELEASE SAVEPOINT "${name}"`; }
  rollbackToSavepointSql(name: string): string { return `ROLLBACK TO SAVEPOINT "${name}"`; }
  backstopSql(millis: number): string { return `SET idle_in_transaction_session_timeout = ${Math.max(0, Math.floor(millis))}`; }

  async close(): Promise<void> {
    /* no driver-wide resources */
  }
}
