/**
 * MySQL and MariaDB through `mysql2`. Connections are plain mysql2 connections owned by our pool.
 * @module
 */
import mysql from 'mysql2';
import type { DatabaseConfig } from '../../config/types.js';
import { BrokerError, Errors } from '../../errors.js';
import type { BeginOptions, Driver, DriverConnection, RawResult } from '../driver.js';
import { checkBeginOptions, isFatalSqlState } from '../driver.js';
import { MYSQL_SESSION_SQL, MYSQL_TYPE_OPTIONS, normalizeRows } from './mysql-types.js';

/** The structural subset of a mysql2 error we read. */
interface MysqlError {
  message: string;
  code?: string;
  errno?: number;
  sqlState?: string;
  sqlMessage?: string;
  fatal?: boolean;
}

/** The structural subset of a mysql2 connection we use. */
interface MysqlConn {
  threadId: number | null;
  query(options: { sql: string; values?: unknown[]; rowsAsArray?: boolean }, cb: (err: MysqlError | null, rows: unknown, fields: unknown) => void): unknown;
  on(event: 'error' | 'end', listener: (err?: MysqlError) => void): unknown;
  end(cb?: (err?: unknown) => void): void;
  destroy(): void;
  /** COM_RESET_CONNECTION; mysql2 also forgets its prepared statements. */
  reset(cb: (err: MysqlError | null) => void): void;
  /** The socket (a net.Socket). */
  stream?: { destroyed: boolean; once(event: 'close', listener: () => void): unknown };
}

interface ResultHeader {
  affectedRows: number;
  insertId: number | string;
  serverStatus?: number;
}

// Flags of the server status word in OK packets (mysql_com.h).
const SERVER_STATUS_IN_TRANS = 1;
const SERVER_STATUS_AUTOCOMMIT = 2;

/** Turns whatever mysql2 reported into a `BrokerError`. */
export function mysqlError(db: string, err: unknown): BrokerError {
  if (err instanceof BrokerError) return err;
  const e = err as MysqlError;
  const message = e?.sqlMessage ?? e?.message ?? String(err);
  if (e?.fatal || (e?.sqlState !== undefined && isFatalSqlState(e.sqlState)) || e?.code === 'PROTOCOL_CONNECTION_LOST') {
    return new BrokerError('CONNECTION_LOST', `connection to database ${db} lost: ${message}`, {
      errno: e?.errno, driverCode: e?.code, sqlState: e?.sqlState, database: db,
    });
  }
  return new BrokerError('DATABASE_ERROR', message, {
    errno: e?.errno, driverCode: e?.code, sqlState: e?.sqlState, constraint: constraintOf(e?.errno, message), database: db,
  });
}

/**
 * Fix: the server names the violated constraint only inside the message text, so `constraint`
 * was always missing on MySQL/MariaDB although DESIGN.md promises it for DATABASE_ERROR (pg sends
 * it as a field). Read it from the messages of the constraint errors.
 */
export function constraintOf(errno: number | undefined, message: string): string | undefined {
  switch (errno) {
    case 1062: // ER_DUP_ENTRY: "Duplicate entry '…' for key 'name'" (MySQL 8: 'table.name')
    case 1586: { // ER_DUP_ENTRY_WITH_KEY_NAME
      const key = /for key '(.*)'$/s.exec(message)?.[1];
      return key === undefined ? undefined : key.slice(key.lastIndexOf('.') + 1);
    }
    case 1451: // ER_ROW_IS_REFERENCED_2: "… a foreign key constraint fails (`db`.`t`, CONSTRAINT `name` FOREIGN KEY …"
    case 1452: // ER_NO_REFERENCED_ROW_2
    case 4025: // MariaDB ER_CONSTRAINT_FAILED: "CONSTRAINT `name` failed for `db`.`t`"
      return /CONSTRAINT `((?:[^`]|``)+)`/.exec(message)?.[1].replace(/``/g, '`');
    case 3819: // MySQL ER_CHECK_CONSTRAINT_VIOLATED: "Check constraint 'name' is violated."
      return /^Check constraint '(.*)' is violated/.exec(message)?.[1];
    default:
      return undefined;
  }
}

class MysqlConnection implements DriverConnection {
  readonly seq: number;
  readonly serverId: number;
  broken = false;
  readonly #conn: MysqlConn;
  readonly #db: string;
  #inTransaction = false;
  #autocommitOff = false;
  #brokenListener: ((err: Error) => void) | undefined;

  constructor(seq: number, conn: MysqlConn, db: string) {
    this.seq = seq;
    this.#conn = conn;
    this.#db = db;
    this.serverId = conn.threadId ?? 0;
    conn.on('error', (err) => this.#markBroken(new Error(err?.message ?? 'connection error')));
    conn.on('end', () => this.#markBroken(new Error('connection ended')));
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

  query(sql: string, params: readonly unknown[] | undefined): Promise<RawResult> {
    return new Promise((resolve, reject) => {
      this.#conn.query({ sql, values: params as unknown[] | undefined, rowsAsArray: true }, (err, rows, fields) => {
        if (err) {
          const out = mysqlError(this.#db, err);
          if (out.code === 'CONNECTION_LOST') this.#markBroken(new Error(out.message));
          reject(out);
          return;
        }
        resolve(this.#result(rows, fields));
      });
    });
  }

  #result(rows: unknown, fields: unknown): RawResult {
    // A multi-statement query answers with an array of results; the last one is the answer.
    if (Array.isArray(rows) && Array.isArray(fields) && fields.length > 0 && Array.isArray(fields[0])) {
      return this.#result(rows[rows.length - 1], fields[fields.length - 1]);
    }
    if (Array.isArray(rows)) {
      const names = Array.isArray(fields) ? (fields as { name: string }[]).map((f) => f.name) : [];
      if (Array.isArray(fields)) normalizeRows(rows as unknown[][], fields as { columnType?: number }[]);
      return { fields: names, rows: rows as unknown[][], rowCount: rows.length };
    }
    const h = rows as ResultHeader;
    if (typeof h.serverStatus === 'number') {
      // Only OK packets carry the status word; a SELECT cannot open a transaction by itself.
      this.#inTransaction = (h.serverStatus & SERVER_STATUS_IN_TRANS) !== 0;
      this.#autocommitOff = (h.serverStatus & SERVER_STATUS_AUTOCOMMIT) === 0;
    }
    const out: RawResult = { fields: [], rows: [], rowCount: h.affectedRows ?? 0 };
    if (h.insertId !== undefined && h.insertId !== 0) {
      const id = typeof h.insertId === 'string' ? BigInt(h.insertId) : h.insertId;
      out.insertId = id;
    }
    return out;
  }

  needsReset(): boolean {
    return this.#inTransaction || this.#autocommitOff;
  }

  /**
   * Resets everything a session may carry (user variables, session settings, temporary tables,
   * locks, an open transaction) with COM_RESET_CONNECTION, keeping the connection.
   */
  resetSession(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#conn.reset((err) => {
        if (err) {
          const out = mysqlError(this.#db, err);
          if (out.code === 'CONNECTION_LOST') this.#markBroken(new Error(out.message));
          reject(out);
          return;
        }
        this.#inTransaction = false;
        this.#autocommitOff = false;
        resolve();
      });
    });
  }

  async reset(): Promise<void> {
    await this.query('ROLLBACK', undefined);
    if (this.#autocommitOff) await this.query('SET autocommit = 1', undefined);
    this.#inTransaction = false;
    this.#autocommitOff = false;
  }

  end(): Promise<void> {
    this.broken = true;
    // Fix: mysql2 calls end()'s callback as soon as COM_QUIT is written, not when the server has
    // closed the session, so the pool (cap accounting) and broker.close() ("no session left")
    // moved on while the session still existed. Resolve when the socket has closed.
    return new Promise((resolve) => {
      const stream = this.#conn.stream;
      if (stream === undefined || stream.destroyed) {
        try {
          this.#conn.end(() => undefined);
        } catch {
          /* already closed */
        }
        resolve();
        return;
      }
      stream.once('close', () => resolve());
      try {
        this.#conn.end(() => undefined);
      } catch {
        this.#conn.destroy();
      }
    });
  }

  destroy(): void {
    this.broken = true;
    this.#conn.destroy();
  }
}

/** MySQL/MariaDB driver over `mysql2`. */
export class MysqlDriver implements Driver {
  readonly kind = 'mysql' as const;
  readonly #config: DatabaseConfig;

  constructor(config: DatabaseConfig) {
    this.#config = config;
  }

  #options(): Record<string, unknown> {
    const c = this.#config;
    const base: Record<string, unknown> = {
      connectTimeout: c.connectTimeoutMillis,
      enableKeepAlive: true,
      // Value types aligned with the PostgreSQL driver (see mysql-types.ts).
      ...MYSQL_TYPE_OPTIONS,
      connectAttributes: { program_name: 'threadbroker' },
    };
    if (c.url !== undefined) {
      const u = new URL(c.url.replace(/^mariadb:/, 'mysql:'));
      return {
        ...base,
        host: u.hostname,
        port: u.port ? Number(u.port) : 3306,
        user: decodeURIComponent(u.username),
        password: decodeURIComponent(u.password),
        database: u.pathname.length > 1 ? decodeURIComponent(u.pathname.slice(1)) : undefined,
      };
    }
    return { ...base, host: c.host, port: c.port, user: c.user, password: c.password, database: c.database };
  }

  connect(seq: number): Promise<DriverConnection> {
    const name = this.#config.name;
    return new Promise((resolve, reject) => {
      const conn = mysql.createConnection(this.#options()) as unknown as MysqlConn & {
        connect(cb: (err: MysqlError | null) => void): void;
        once(ev: 'error', l: (e: MysqlError) => void): void;
        removeListener(ev: 'error', l: (e: MysqlError) => void): void;
      };
      const early = (): void => undefined;
      conn.on('error', early);
      conn.connect((err) => {
        if (err) {
          conn.destroy();
          reject(Errors.connectionLost(name, `cannot connect: ${err.message}`));
          return;
        }
        // TIMESTAMP columns convert through the session time zone; UTC matches `timezone: 'Z'`.
        conn.query({ sql: MYSQL_SESSION_SQL }, (setErr) => {
          if (setErr) {
            conn.destroy();
            reject(Errors.connectionLost(name, `cannot set up the session: ${setErr.message}`));
            return;
          }
          conn.removeListener('error', early);
          resolve(new MysqlConnection(seq, conn, name));
        });
      });
    });
  }

  beginSql(opts?: BeginOptions): string[] {
    checkBeginOptions(opts);
    // MySQL sets the level of the next transaction with its own statement; START TRANSACTION
    // takes only the access mode.
    const out: string[] = [];
    if (opts?.isolation) out.push(`SET TRANSACTION ISOLATION LEVEL ${opts.isolation.toUpperCase()}`);
    out.push(opts?.readOnly ? 'START TRANSACTION READ ONLY' : 'START TRANSACTION');
    return out;
  }

  savepointSql(name: string): string { return `SAVEPOINT \`${name}\``; }
  releaseSavepointSql(name: string): string { return `RELEASE SAVEPOINT \`${name}\``; }
  rollbackToSavepointSql(name: string): string { return `ROLLBACK TO SAVEPOINT \`${name}\``; }

  async close(): Promise<void> {
    /* no driver-wide resources */
  }
}
