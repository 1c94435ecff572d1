/**
 * PostgreSQL through `pg`. Connections are plain `pg.Client`s owned by our pool: pg-pool would
 * add a second queue and a second cap, and would hand clients back mid-transaction.
 * @module
 */
import pg from 'pg';
import type { DatabaseConfig } from '../../config/types.js';
import { BrokerError, Errors } from '../../errors.js';
import type { BeginOptions, Driver, DriverConnection, RawResult } from '../driver.js';
import { checkBeginOptions, isFatalSqlState } from '../driver.js';
import { pgTypes, utcDateParams } from './pg-types.js';

/** The structural subset of a `pg` server error we read. */
interface PgServerError {
  message: string;
  code?: string;
  detail?: string;
  hint?: string;
  constraint?: string;
  table?: string;
  column?: string;
  schema?: string;
  position?: string;
  severity?: string;
}

/** Turns whatever `pg` threw into a `BrokerError`. Socket-level failures become `CONNECTION_LOST`. */
export function pgError(db: string, err: unknown, connectionBroken: boolean): BrokerError {
  if (err instanceof BrokerError) return err;
  const e = err as PgServerError;
  if (e && typeof e === 'object' && typeof e.code === 'string' && /^[0-9A-Z]{5}$/.test(e.code) && e.severity !== undefined) {
    const fatal = isFatalSqlState(e.code);
    return new BrokerError(fatal ? 'CONNECTION_LOST' : 'DATABASE_ERROR', e.message, {
      sqlState: e.code, driverCode: e.code, detail: e.detail, hint: e.hint, constraint: e.constraint,
      table: e.table, column: e.column, schema: e.schema, position: e.position, database: db,
    });
  }
  const message = e && typeof e.message === 'string' ? e.message : String(err);
  if (connectionBroken) return Errors.connectionLost(db, message);
  return new BrokerError('DATABASE_ERROR', message, { database: db });
}

class PgConnection implements DriverConnection {
  readonly seq: number;
  serverId = 0;
  broken = false;
  readonly #client: pg.Client;
  readonly #db: string;
  #brokenListener: ((err: Error) => void) | undefined;

  constructor(seq: number, client: pg.Client, db: string) {
    this.seq = seq;
    this.#client = client;
    this.#db = db;
    // An idle client whose backend is killed emits 'error'; without a listener that would crash
    // the process (pg #1324). Mark it broken so the pool never hands it out again.
    client.on('error', (err) => this.#markBroken(err));
    client.on('end', () => this.#markBroken(new Error('connection ended')));
  }

  #markBroken(err: Error): void {
    if (this.broken) return;
    this.broken = true;
    const l = this.#brokenListener;
    this.#brokenListener = undefined;
    l?.(err);
  }

  onBroken(listener: (err: Error) => void): void {
    this.#brokenListener = listener;
  }

  async query(sql: string, params: readonly unknown[] | undefined): Promise<RawResult> {
    try {
      const r = await this.#client.query({ text: sql, values: utcDateParams(params), rowMode: 'array' });
      // A multi-statement simple query returns an array of results; the last one is the answer.
      const res = (Array.isArray(r) ? r[r.length - 1] : r) as pg.QueryResult<unknown[]>;
      const fields = res.fields ? res.fields.map((f) => f.name) : [];
      return { fields, rows: res.rows ?? [], rowCount: res.rowCount ?? res.rows?.length ?? 0 };
    } catch (err) {
      const out = pgError(this.#db, err, false);
      if (out.code === 'CONNECTION_LOST') {
        this.#markBroken(err as Error);
        throw out;
      }
      if (!(err as PgServerError)?.severity) {
        // A non-server error (socket reset, "Connection terminated") means the session is gone...
        if (this.broken || !this.#queryable()) {
          this.#markBroken(err as Error);
          throw Errors.connectionLost(this.#db, out.message, err);
        }
        // Fix: ...unless pg refused the statement before sending it (a value it cannot serialise,
        // e.g. a circular object): pg then closes the statement and syncs, and the session is fine.
        // That used to answer CONNECTION_LOST and throw a healthy connection away.
        throw new BrokerError('INVALID_ARGUMENT', `the statement was refused before it was sent: ${out.message}`, { database: this.#db });
      }
      throw out;
    }
  }

  /** False once pg has given up on the session (socket error or end); pg's own flags. */
  #queryable(): boolean {
    const c = this.#client as unknown as { _queryable?: boolean; _ending?: boolean };
    return c._queryable !== false && c._ending !== true;
  }

  needsReset(): boolean {
    // 'I' = idle outside a transaction; 'T' in one; 'E' in a failed one.
    const s = this.#client.getTransactionStatus?.();
    return s !== 'I' && s !== null && s !== undefined;
  }

  async reset(): Promise<void> {
    await this.query('ROLLBACK', undefined);
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
    const conn = new PgConnection(seq, client, this.#config.name);
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
