/**
 * MySQL and MariaDB through `mysql2`. Connections are plain mysql2 connections owned by our pool.
 * @module
 */
import type { Duplex } from 'node:stream';
import mysql from 'mysql2';
import type { DatabaseConfig } from '../../config/types.js';
import { BrokerError, Errors } from '../../errors.js';
import type { BeginOptions, Driver, DriverConnection, ForwardStatement, RawResult, StatementLimits } from '../driver.js';
import { NotForwarded, checkBeginOptions, internalDeadline, limitsOf } from '../driver.js';
import { binaryRowsToText } from '../../wire/mysql-binary-rows.js';
import { MYSQL_MAX_PREPARED_STATEMENTS, executePrepared } from './mysql-execute.js';
import type { PreparedStatement } from './mysql-execute.js';
import { mysqlError, type MysqlError } from '../../wire/mysql-error.js';
import { MysqlForwarder, type ForwardedAnswer, type MysqlForwardPacket } from './mysql-forward.js';
import { PreparedStatements } from './mysql-statements.js';
import { bindParams } from '../../wire/mysql-params.js';
import type { BoundParam } from '../../wire/mysql-params.js';
import { MYSQL_SESSION_SQL, MYSQL_TYPE_OPTIONS, normalizeRows } from '../../wire/mysql-types.js';

/** The structural subset of a mysql2 streaming query (a query without a callback) we use. */
interface MysqlQuery {
  on(event: 'fields', listener: (fields: ColumnDef[] | undefined) => void): this;
  on(event: 'result', listener: (row: unknown[] | ResultHeader) => void): this;
  on(event: 'error', listener: (err: MysqlError) => void): this;
  on(event: 'end', listener: () => void): this;
}

/** The structural subset of a mysql2 streaming execute we use. */
interface MysqlExecute extends MysqlQuery {
  /** Unset when mysql2's own `execute` had to prepare the statement again and could not. */
  statement?: unknown;
}

/** The structural subset of a mysql2 column definition we read. */
interface ColumnDef {
  name: string;
  columnType?: number;
  columnLength?: number;
  decimals?: number;
}

/** The structural subset of a mysql2 connection we use. */
interface MysqlConn {
  threadId: number | null;
  query(options: { sql: string; values?: unknown[]; rowsAsArray?: boolean }): MysqlQuery;
  query(options: { sql: string }, cb: (err: MysqlError | null) => void): unknown;
  /** Prepares a statement (kept in mysql2's per-connection cache until `unprepare`). */
  prepare(options: { sql: string; rowsAsArray: true }, cb: (err: MysqlError | null, stmt?: PreparedStatement) => void): unknown;
  /** Closes a prepared statement on the server and drops it from mysql2's cache. */
  unprepare(options: { sql: string; rowsAsArray: true }): unknown;
  execute(options: { sql: string; values: unknown[]; rowsAsArray: true; dateStrings: true }): MysqlExecute;
  addCommand(cmd: MysqlExecute): unknown;
  on(event: 'error' | 'end', listener: (err?: MysqlError) => void): unknown;
  end(cb?: (err?: unknown) => void): void;
  destroy(): void;
  /** COM_RESET_CONNECTION; mysql2 also forgets its prepared statements. */
  reset(cb: (err: MysqlError | null) => void): void;
  /** The socket (a net.Socket, or a TLS socket over it). */
  stream?: Duplex & { destroyed: boolean; bytesRead: number };
}

interface ResultHeader {
  affectedRows: number;
  insertId: number | string;
  serverStatus?: number;
}

// Flags of the server status word in OK packets (mysql_com.h).
const SERVER_STATUS_IN_TRANS = 1;
const SERVER_STATUS_AUTOCOMMIT = 2;

// Server errors that mean "cannot run this through the binary protocol", not "the statement is wrong".
const ER_UNKNOWN_STMT_HANDLER = 1243;
const ER_UNSUPPORTED_PS = 1295;
const ER_MAX_PREPARED_STMT_COUNT_REACHED = 1461;
const ER_NEED_REPREPARE = 1615;
const COM_QUERY = 0x03;

type Settle = (err: unknown, res?: RawResult) => void;

class MysqlConnection implements DriverConnection {
  readonly seq: number;
  readonly serverId: number;
  broken = false;
  readonly #conn: MysqlConn;
  readonly #db: string;
  readonly #limits: StatementLimits;
  #inTransaction = false;
  #autocommitOff = false;
  #brokenListener: ((err: Error) => void) | undefined;
  /** Statements in flight: a streaming query hears of a lost connection only through the connection. */
  readonly #inflight = new Set<Settle>();
  /** What this connection prepared, and what the server would not prepare. */
  readonly #statements: PreparedStatements;
  #forwarder: MysqlForwarder | undefined;

  constructor(seq: number, conn: MysqlConn, db: string, limits: StatementLimits) {
    this.seq = seq;
    this.#conn = conn;
    this.#db = db;
    this.#limits = limits;
    this.serverId = conn.threadId ?? 0;
    this.#statements = new PreparedStatements((sql) => conn.unprepare({ sql, rowsAsArray: true }));
    conn.on('error', (err) => this.#markBroken(new Error(err?.message ?? 'connection error')));
    conn.on('end', () => this.#markBroken(new Error('connection ended')));
  }

  #markBroken(err: Error): void {
    if (this.broken) return;
    this.broken = true;
    for (const settle of [...this.#inflight]) settle(Errors.connectionLost(this.#db, err.message));
    const l = this.#brokenListener;
    this.#brokenListener = undefined;
    l?.(err);
  }

  onBroken(listener: (err: Error) => void): void {
    this.#brokenListener = listener;
  }

  /** Installs forwarding under mysql2's packet parser, once the session is up (see mysql-forward.ts). */
  enableForwarding(): void {
    const stream = this.#conn.stream;
    if (stream === undefined) throw new Error('mysql2 has no socket');
    this.#forwarder = new MysqlForwarder(stream, {
      isBroken: () => this.broken,
      setStatus: (inTransaction, autocommitOff) => {
        this.#inTransaction = inTransaction;
        this.#autocommitOff = autocommitOff;
      },
      abort: (err) => this.#abort(() => undefined, err),
      track: (fail) => {
        const settle: Settle = (err) => fail(err as BrokerError);
        this.#inflight.add(settle);
        return () => this.#inflight.delete(settle);
      },
    }, this.#db, this.#limits);
  }

  /**
   * Runs statements the thread encoded (wire/mysql-wire.ts), pipelined. A COM_STMT_EXECUTE runs
   * the connection's prepared statement for its text, prepared here first when needed (through
   * mysql2, as for `query`). What cannot run as sent is refused with {@link NotForwarded}: the
   * thread sends it again as a plain query, which takes the text path `query` takes.
   */
  forward(batch: readonly ForwardStatement[]): Promise<Uint8Array>[] {
    const fwd = this.#forwarder;
    if (fwd === undefined) return batch.map(() => Promise.reject(new BrokerError('INVALID_ARGUMENT', 'forwarding is not enabled on this connection')));
    if (this.broken) return batch.map(() => Promise.reject(Errors.connectionLost(this.#db, 'the connection is closed')));
    const unprepared = batch.filter((s) => s.msg[4] !== COM_QUERY && this.#statements.use(s.sql) === undefined && !this.#statements.isTextOnly(s.sql));
    if (unprepared.length === 0) return this.#write(fwd, batch);
    const done = this.#prepareAll(unprepared.map((s) => s.sql));
    const out = batch.map(() => ({}) as { resolve: (b: Uint8Array) => void; reject: (e: unknown) => void });
    const answers = out.map((o) => new Promise<Uint8Array>((resolve, reject) => Object.assign(o, { resolve, reject })));
    done.then(
      () => this.#write(fwd, batch).forEach((p, i) => p.then(out[i].resolve, out[i].reject)),
      (err: unknown) => out.forEach((o) => o.reject(err)),
    );
    return answers;
  }

  /** Writes the statements that can run as sent, in one write; the others get NotForwarded. */
  #write(fwd: MysqlForwarder, batch: readonly ForwardStatement[]): Promise<Uint8Array>[] {
    const out = new Array<Promise<Uint8Array>>(batch.length);
    const packets: MysqlForwardPacket[] = [];
    const at: number[] = [];
    for (let i = 0; i < batch.length; i++) {
      const { sql, msg, params } = batch[i];
      let statementId: number | undefined;
      if (msg[4] !== COM_QUERY) {
        const stmt = this.#statements.isTextOnly(sql) ? undefined : this.#statements.use(sql) as (PreparedStatement & { id?: number }) | undefined;
        // Unprepared here: the server would not prepare it, or the prepare failed (the text path
        // tries again and gives its error). A count that differs: mysql2's text formatting leaves
        // extra placeholders and ignores extra values; the text path keeps that.
        if (stmt === undefined || typeof stmt.id !== 'number') {
          out[i] = Promise.reject(new NotForwarded(this.#statements.isTextOnly(sql)));
          continue;
        }
        if (stmt.parameters.length !== params) {
          out[i] = Promise.reject(new NotForwarded(true));
          continue;
        }
        statementId = stmt.id;
      }
      packets.push({ sql, msg, statementId });
      at.push(i);
    }
    const answers = packets.length > 0 ? fwd.forward(packets) : [];
    for (let k = 0; k < answers.length; k++) {
      const { sql } = batch[at[k]];
      out[at[k]] = answers[k].then((a) => this.#answer(sql, a));
    }
    return out;
  }

  /**
   * The server's answer, unless it says the prepared statement is gone (1243) or must be
   * prepared again after DDL (1615): nothing ran, so the thread sends it again as a plain query,
   * which prepares it anew.
   */
  #answer(sql: string, a: ForwardedAnswer): Uint8Array {
    if (a.errno === ER_UNKNOWN_STMT_HANDLER || a.errno === ER_NEED_REPREPARE) {
      this.#statements.forget(sql);
      throw new NotForwarded(false);
    }
    return a.bytes;
  }

  /**
   * Prepares each text (through mysql2, one after another) within the statement deadline. A text
   * the server refuses to prepare is left unprepared (and, for ER_UNSUPPORTED_PS, marked
   * text-only); a lost session rejects.
   */
  #prepareAll(sqls: readonly string[]): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      let timer: NodeJS.Timeout | undefined;
      const settle: Settle = (err) => {
        if (settled) return;
        settled = true;
        this.#inflight.delete(settle);
        if (timer !== undefined) clearTimeout(timer);
        if (err !== undefined) reject(err);
        else resolve();
      };
      this.#inflight.add(settle);
      const t = this.#limits.queryTimeoutMillis;
      if (t > 0) timer = setTimeout(() => this.#abort(settle, Errors.queryTimeout(this.#db, t)), t);
      const next = (i: number): void => {
        if (settled) return;
        if (i === sqls.length) {
          settle(undefined);
          return;
        }
        const sql = sqls[i];
        if (this.#statements.use(sql) !== undefined) {
          next(i + 1);
          return;
        }
        this.#statements.makeRoom();
        this.#conn.prepare({ sql, rowsAsArray: true }, (err, stmt) => {
          if (settled) return;
          if (err) {
            const out = mysqlError(this.#db, err);
            if (out.code === 'CONNECTION_LOST') {
              this.#markBroken(new Error(out.message));
              settle(out);
              return;
            }
            if (err.errno === ER_UNSUPPORTED_PS) this.#statements.markTextOnly(sql);
            else this.#statements.refused(sql, err);
          } else {
            this.#statements.add(sql, stmt!);
          }
          next(i + 1);
        });
      };
      next(0);
    });
  }

  /**
   * Statements with parameters run through the binary protocol (prepared once per connection,
   * at most MYSQL_MAX_PREPARED_STATEMENTS kept), binding and reading values as the text protocol
   * would (mysql-params.ts, mysql-binary-rows.ts). Statements without parameters, and those the
   * binary protocol cannot carry alike, run as text.
   */
  query(sql: string, params: readonly unknown[] | undefined): Promise<RawResult> {
    // A forwarded statement whose prepare the server just refused comes back as a plain query:
    // go straight to text, as after a refusal here.
    const refusal = this.#statements.takeRefusal(sql);
    const bound = params !== undefined && params.length > 0 && !this.#statements.isTextOnly(sql) ? bindParams(params) : undefined;
    return this.#statement(sql, params, this.#limits.queryTimeoutMillis, bound, refusal);
  }

  /**
   * Runs one statement as a streaming query, so rows are counted as they arrive. Fix
   * (RELIABILITY.md F6, S6): a statement stuck on a dead network waited forever, and a huge result
   * was held whole in the main thread before anyone could refuse it. Now a deadline and a per-row
   * check end the statement: the caller gets QUERY_TIMEOUT / RESULT_TOO_LARGE at once and the
   * connection is destroyed (MySQL cannot stop a result it is sending but by closing the session).
   *
   * With `bound` parameters it prepares the statement (once per connection) and executes it; a
   * statement the server will not prepare, or whose placeholders do not match the parameters,
   * runs as text instead, exactly as it did before. The deadline covers both steps.
   */
  #statement(sql: string, params: readonly unknown[] | undefined, timeoutMillis: number, bound?: BoundParam[], refusal?: MysqlError): Promise<RawResult> {
    if (this.broken) return Promise.reject(Errors.connectionLost(this.#db, 'the connection is closed'));
    return new Promise<RawResult>((resolve, reject) => {
      let settled = false;
      let timer: NodeJS.Timeout | undefined;
      const settle: Settle = (err, res) => {
        if (settled) return;
        settled = true;
        this.#inflight.delete(settle);
        if (timer !== undefined) clearTimeout(timer);
        if (err !== undefined) reject(err);
        else resolve(res!);
      };
      this.#inflight.add(settle);
      if (timeoutMillis > 0) timer = setTimeout(() => this.#abort(settle, Errors.queryTimeout(this.#db, timeoutMillis)), timeoutMillis);
      const { maxRows, maxResultBytes } = this.#limits;
      const stream = this.#conn.stream;
      // Only the events of the command now answering count (a failed prepare still ends its execute).
      let current: MysqlQuery | undefined;
      const lost = (out: BrokerError): void => {
        this.#markBroken(new Error(out.message));
        settle(out);
      };

      const run = (cmd: MysqlQuery, binary: boolean, onEnd?: (ok: boolean) => void): void => {
        current = cmd;
        // A multi-statement query gives one result per statement; the last one is the answer.
        let fields: ColumnDef[] | undefined;
        let rows: unknown[][] = [];
        let header: ResultHeader | undefined;
        let count = 0;
        const bytesAtStart = stream?.bytesRead ?? 0;
        cmd.on('fields', (f) => {
          if (current !== cmd) return;
          fields = f;
          rows = [];
          header = undefined;
        });
        cmd.on('result', (row) => {
          if (settled || current !== cmd) return;
          if (!Array.isArray(row)) {
            header = row;
            this.#track(row);
            return;
          }
          count++;
          if (maxRows > 0 && count > maxRows) this.#abort(settle, Errors.resultTooLarge(this.#db, `maxRows = ${maxRows}`));
          else if (maxResultBytes > 0 && stream !== undefined && stream.bytesRead - bytesAtStart > maxResultBytes) this.#abort(settle, Errors.resultTooLarge(this.#db, `maxResultBytes = ${maxResultBytes}`));
          else rows.push(row);
        });
        cmd.on('error', (err) => {
          if (current !== cmd) return;
          current = undefined; // mysql2 still emits 'end' after an error
          const out = mysqlError(this.#db, err);
          if (out.code === 'CONNECTION_LOST') {
            lost(out);
            return;
          }
          // The statement did not run: the server lost it (1243), gave up re-preparing it after
          // DDL (1615), or mysql2's fallback `execute` could not prepare it again.
          const errno = err.errno;
          if (binary && (errno === ER_UNKNOWN_STMT_HANDLER || errno === ER_NEED_REPREPARE || (cmd as MysqlExecute).statement === undefined)) {
            this.#statements.forget(sql);
            asText(err);
            return;
          }
          onEnd?.(false);
          settle(out);
        });
        cmd.on('end', () => {
          if (current !== cmd) return;
          onEnd?.(true);
          settle(undefined, this.#result(fields, rows, header, binary));
        });
      };

      const text = (onEnd?: (ok: boolean) => void): void => {
        run(this.#conn.query({ sql, values: params as unknown[] | undefined, rowsAsArray: true }), false, onEnd);
      };
      // After the server refused to prepare (or execute) the statement, it runs as text and gives
      // what it gave before, error included. Remembered as text-only when the text ran (the
      // server cannot prepare it, e.g. SHOW … LIKE ?) or the protocol refuses it outright.
      const asText = (refusal: MysqlError): void => {
        try {
          text((ok) => {
            const transient = refusal.errno === ER_MAX_PREPARED_STMT_COUNT_REACHED || refusal.errno === ER_NEED_REPREPARE;
            if ((ok && !transient) || refusal.errno === ER_UNSUPPORTED_PS) this.#statements.markTextOnly(sql);
          });
        } catch (err) {
          settle(err);
        }
      };
      const execute = (stmt: PreparedStatement): void => {
        run(executePrepared(this.#conn, sql, stmt, bound!), true);
      };
      // mysql2's format leaves extra placeholders in the text and ignores extra values: keep that.
      const executeOrText = (stmt: PreparedStatement): void => {
        if (stmt.parameters.length === bound!.length) execute(stmt);
        else text();
      };
      const prepare = (): void => {
        this.#statements.makeRoom();
        this.#conn.prepare({ sql, rowsAsArray: true }, (err, stmt) => {
          if (settled) return; // timed out or lost: the connection is being destroyed
          if (err) {
            const out = mysqlError(this.#db, err);
            if (out.code === 'CONNECTION_LOST') lost(out);
            else asText(err);
            return;
          }
          this.#statements.add(sql, stmt!);
          try {
            executeOrText(stmt!);
          } catch (e) {
            settle(e);
          }
        });
      };

      try {
        const stmt = bound === undefined ? undefined : this.#statements.use(sql);
        if (bound === undefined) text();
        else if (refusal !== undefined) asText(refusal);
        else if (stmt === undefined) prepare();
        else executeOrText(stmt);
      } catch (err) {
        settle(err); // a value mysql2 refuses before sending anything
      }
    });
  }

  /** Ends a statement early: its caller gets `err`, the connection is destroyed. */
  #abort(settle: Settle, err: BrokerError): void {
    settle(err);
    this.#markBroken(err);
    this.destroy();
  }

  /** The transaction state an OK packet reports (only OK packets carry the status word). */
  #track(h: ResultHeader): void {
    if (typeof h.serverStatus === 'number') {
      this.#inTransaction = (h.serverStatus & SERVER_STATUS_IN_TRANS) !== 0;
      this.#autocommitOff = (h.serverStatus & SERVER_STATUS_AUTOCOMMIT) === 0;
    }
  }

  #result(fields: ColumnDef[] | undefined, rows: unknown[][], header: ResultHeader | undefined, binary: boolean): RawResult {
    if (header === undefined) {
      const names = fields === undefined ? [] : fields.map((f) => f.name);
      if (fields !== undefined) {
        if (binary) binaryRowsToText(rows, fields);
        normalizeRows(rows, fields);
      }
      return { fields: names, rows, rowCount: rows.length };
    }
    const out: RawResult = { fields: [], rows: [], rowCount: header.affectedRows ?? 0 };
    if (header.insertId !== undefined && header.insertId !== 0) {
      const id = typeof header.insertId === 'string' ? BigInt(header.insertId) : header.insertId;
      out.insertId = id;
    }
    return out;
  }

  /**
   * COMMIT, reporting an unknown outcome as such. Fix (RELIABILITY.md F2): a connection lost while
   * COMMIT was in flight answered TX_CONNECTION_LOST ("rolled back by the server"), but the server
   * may have committed before the reply was lost, so a caller that retried wrote twice. MySQL
   * has no transaction id to look up: the caller checks its own writes (an operation id).
   */
  async commit(): Promise<void> {
    if (!this.#inTransaction) {
      await this.query('COMMIT', undefined);
      return;
    }
    try {
      await this.query('COMMIT', undefined);
    } catch (err) {
      if (err instanceof BrokerError && (err.code === 'CONNECTION_LOST' || err.code === 'QUERY_TIMEOUT')) {
        throw Errors.commitOutcomeUnknown(this.#db, err.message, undefined);
      }
      throw err;
    }
  }

  needsReset(): boolean {
    return this.#inTransaction || this.#autocommitOff;
  }

  /**
   * Resets everything a session may carry (user variables, session settings, temporary tables,
   * locks, an open transaction) with COM_RESET_CONNECTION, keeping the connection.
   */
  resetSession(): Promise<void> {
    if (this.broken) return Promise.reject(Errors.connectionLost(this.#db, 'the connection is closed'));
    return new Promise((resolve, reject) => {
      // Bounded: a reset stuck on a dead network must not hold its reservation slot for good.
      const millis = internalDeadline(this.#limits);
      const timer = setTimeout(() => {
        const err = Errors.queryTimeout(this.#db, millis);
        reject(err);
        this.#markBroken(err);
        this.destroy();
      }, millis);
      this.#conn.reset((err) => {
        clearTimeout(timer);
        if (err) {
          const out = mysqlError(this.#db, err);
          if (out.code === 'CONNECTION_LOST') this.#markBroken(new Error(out.message));
          reject(out);
          return;
        }
        this.#inTransaction = false;
        this.#autocommitOff = false;
        // The server dropped every prepared statement; mysql2 forgot its own.
        this.#statements.clearPrepared();
        resolve();
      });
    });
  }

  async reset(): Promise<void> {
    // Housekeeping is bounded even without queryTimeoutMillis: a reset stuck on a dead network must not hold its slot.
    const millis = internalDeadline(this.#limits);
    await this.#statement('ROLLBACK', undefined, millis);
    if (this.#autocommitOff) await this.#statement('SET autocommit = 1', undefined, millis);
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
    // Fix (RELIABILITY.md F9, S6, F6): mysql2's destroy() only ends the socket (a FIN); while the
    // server is busy with a statement, or the network is dead, the socket stayed open: close()
    // left a handle that kept the process alive for as long as the statement ran, and a result
    // cut by RESULT_TOO_LARGE kept arriving and being parsed. Close the socket itself.
    this.#conn.stream?.destroy();
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
      // The connection closes its oldest statement past MYSQL_MAX_PREPARED_STATEMENTS; mysql2's own
      // cache, one larger, never evicts one behind its back.
      maxPreparedStatements: MYSQL_MAX_PREPARED_STATEMENTS + 1,
      connectAttributes: { program_name: 'threadbroker' },
      // No LOAD DATA LOCAL (a server could ask for any file of this process), and no query
      // attributes (never sent): forwarded packets have one layout whatever the server supports.
      flags: ['-LOCAL_FILES', '-CLIENT_QUERY_ATTRIBUTES'],
      // mysql2's generated row parsers refuse a column named `__proto__` (or `__defineGetter__`, …)
      // even for rows as arrays, and the refusal ends the connection: a reserved connection was lost
      // to `select 1 as __proto__`. Its static parsers read arrays without looking at names (and
      // run as fast here); the names are applied in the calling thread, as own properties.
      disableEval: true,
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
      // mysql2's connectTimeout ends at the handshake; the session setup after it is bounded here too.
      const millis = this.#config.connectTimeoutMillis;
      const timer = setTimeout(() => {
        conn.destroy();
        reject(Errors.connectionLost(name, `cannot connect: no session within connectTimeoutMillis = ${millis}ms`));
      }, millis);
      conn.connect((err) => {
        if (err) {
          clearTimeout(timer);
          conn.destroy();
          reject(Errors.connectionLost(name, `cannot connect: ${err.message}`));
          return;
        }
        // TIMESTAMP columns convert through the session time zone; UTC matches `timezone: 'Z'`.
        conn.query({ sql: MYSQL_SESSION_SQL }, (setErr) => {
          clearTimeout(timer);
          if (setErr) {
            conn.destroy();
            reject(Errors.connectionLost(name, `cannot set up the session: ${setErr.message}`));
            return;
          }
          conn.removeListener('error', early);
          const out = new MysqlConnection(seq, conn, name, limitsOf(this.#config));
          // Only when threads forward: `forwardStatements: false` is the way around the socket takeover.
          if (this.#config.forwardStatements) {
            try {
              out.enableForwarding();
            } catch (e) {
              conn.destroy();
              reject(Errors.connectionLost(name, `cannot forward statements on this connection: ${(e as Error).message}`, e));
              return;
            }
          }
          resolve(out);
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
