/**
 * The broker's half of forwarded statements (issue 8): the calling thread encodes a plain
 * statement (pg-wire.ts), this module writes it to one of the broker's connections and hands
 * back the server's answer as bytes, framed but not parsed. The main thread reads only message
 * headers, never a row.
 *
 * It sits under `pg.Client` on the same socket: while a forwarded statement runs, the socket's
 * bytes come here instead of to `pg`'s parser; between statements they go to `pg` as before, so
 * `pg` still owns the session (start-up, transactions of reservations, ROLLBACK, end).
 * @module
 */
import { Buffer } from 'node:buffer';
import type { Duplex } from 'node:stream';
import { BrokerError, Errors } from '../../errors.js';
import { isFatalSqlState, type StatementLimits } from '../driver.js';
import { renameStatement, statementName } from './pg-statements.js';

const Q = 0x51; // Query
const D = 0x44; // DataRow
const E = 0x45; // ErrorResponse
const PARSE_COMPLETE = 0x31;
const Z = 0x5a; // ReadyForQuery
const COPY_IN = 0x47; // CopyInResponse
const IDLE = 0x49; // 'I'

/** What the forwarder needs of its connection. */
export interface ForwardHost {
  /** True once the session is unusable. */
  isBroken(): boolean;
  /** Statements `pg` prepared on this session (pg's own record, shared with it). */
  preparedStatements(): Record<string, string>;
  /** Records the session's transaction status read from ReadyForQuery ('I', 'T' or 'E'). */
  setTransactionStatus(status: string): void;
  /** Marks the session unusable (its waiting statements fail) and closes the socket. */
  abort(err: BrokerError): void;
  /** Registers a waiting statement to be failed if the session breaks; returns the unregister function. */
  track(fail: (err: BrokerError) => void): () => void;
}

interface Running {
  sql: string;
  /** The thread's message: a Query, or Bind(unnamed) + Describe + Execute + Sync. */
  msg: Uint8Array;
  /** Statement name this run uses (undefined: the unnamed statement). */
  name: string | undefined;
  /** A Parse was sent ahead of the Bind. */
  parsing: boolean;
  retried: boolean;
  rows: number;
  bytes: number;
  parsed: boolean;
  sqlState: string | undefined;
  timer: NodeJS.Timeout | undefined;
  untrack: () => void;
  resolve: (answer: Uint8Array) => void;
  reject: (err: BrokerError) => void;
}

/** One statement of a batch: its text and the thread's encoded message. */
export interface ForwardStatement {
  sql: string;
  msg: Uint8Array;
}

/**
 * One connection's forwarding. Built once the session is up; throws when `pg`'s socket does not
 * have the single data listener it installs (an incompatible `pg` version), rather than guess.
 *
 * Statements of one batch are pipelined: written in one socket write, each with its own Sync, so
 * the server answers them in order and an error in one does not touch the others. The answers
 * are matched to the statements in the order they were written.
 */
export class PgForwarder {
  readonly #stream: Duplex;
  readonly #pgListener: (chunk: Buffer) => void;
  readonly #host: ForwardHost;
  readonly #db: string;
  readonly #limits: StatementLimits;
  /** Statements written and not answered yet, in the order written; the head's answer is arriving. */
  readonly #runs: Running[] = [];
  /** Names whose Parse is on its way (a later statement of the batch must not parse them again). */
  readonly #parsing = new Set<string>();
  /** Bytes of the head's answer received so far, when it spans socket reads. */
  #acc: Buffer | undefined;
  #accLen = 0;
  /** Offset of the first message of the answer not examined yet. */
  #scan = 0;

  constructor(stream: Duplex, host: ForwardHost, db: string, limits: StatementLimits) {
    const listeners = stream.listeners('data');
    if (listeners.length !== 1) throw new Error(`pg's socket has ${listeners.length} data listeners, expected its parser alone`);
    this.#stream = stream;
    this.#pgListener = listeners[0] as (chunk: Buffer) => void;
    this.#host = host;
    this.#db = db;
    this.#limits = limits;
    stream.removeListener('data', this.#pgListener);
    stream.on('data', (chunk: Buffer) => this.#onData(chunk));
  }

  /** True while forwarded statements run (the session is not `pg`'s to use). */
  get busy(): boolean {
    return this.#runs.length > 0;
  }

  /**
   * Runs statements the thread encoded, pipelined; each promise resolves with the server's whole
   * answer to its statement, up to and including its ReadyForQuery. Server errors are in the
   * answer (the thread decodes them); rejections are the broker's own: `CONNECTION_LOST`,
   * `QUERY_TIMEOUT`, `RESULT_TOO_LARGE` (which end the session, and so fail the statements
   * behind it with `CONNECTION_LOST`).
   */
  forward(batch: readonly ForwardStatement[]): Promise<Uint8Array>[] {
    if (this.#host.isBroken()) return batch.map(() => Promise.reject(Errors.connectionLost(this.#db, 'the connection is closed')));
    if (this.#runs.length > 0) return batch.map(() => Promise.reject(new BrokerError('INVALID_ARGUMENT', 'forwarded statements are already running on this connection')));
    this.#stream.cork();
    try {
      return batch.map(({ sql, msg }) => {
        if (msg.length < 5 || (msg[0] !== Q && msg[0] !== 0x42)) return Promise.reject(Errors.invalidArgument('not a Query or Bind message'));
        return new Promise<Uint8Array>((resolve, reject) => {
          const run: Running = {
            sql, msg, name: undefined, parsing: false, retried: false, rows: 0, bytes: 0, parsed: false, sqlState: undefined,
            timer: undefined, untrack: () => undefined, resolve, reject,
          };
          run.untrack = this.#host.track((err) => this.#settle(run, err));
          this.#runs.push(run);
          if (this.#runs.length === 1) this.#startClock(run);
          this.#send(run, statementName(sql));
        });
      });
    } finally {
      // One write for the whole batch.
      this.#stream.uncork();
    }
  }

  /** The statement deadline counts from when the server starts on it: when the answer before it ended. */
  #startClock(run: Running): void {
    const t = this.#limits.queryTimeoutMillis;
    if (t > 0 && run.timer === undefined) run.timer = setTimeout(() => this.#fail(run, Errors.queryTimeout(this.#db, t)), t);
  }

  #send(run: Running, name: string | undefined): void {
    run.rows = 0;
    run.bytes = 0;
    run.parsed = false;
    run.sqlState = undefined;
    const { msg } = run;
    if (msg[0] === Q) {
      run.name = undefined;
      run.parsing = false;
      this.#stream.write(msg);
      return;
    }
    run.name = name;
    const prepared = name !== undefined && (this.#host.preparedStatements()[name] === run.sql || this.#parsing.has(name));
    run.parsing = !prepared;
    if (run.parsing && name !== undefined) this.#parsing.add(name);
    const nameBytes = name === undefined ? 0 : Buffer.byteLength(name);
    const parse = prepared ? undefined : parseMessage(name ?? '', run.sql);
    // The thread's Bind targets the unnamed statement: 'B', length, portal '\0', statement '\0', rest.
    const bindLen = readInt32(msg, 1);
    const size = (parse?.length ?? 0) + msg.length + nameBytes;
    const out = Buffer.allocUnsafe(size);
    let o = 0;
    if (parse !== undefined) o += parse.copy(out, 0);
    out[o] = 0x42;
    out.writeInt32BE(bindLen + nameBytes, o + 1);
    out[o + 5] = 0; // portal ''
    o += 6;
    if (name !== undefined) o += out.write(name, o, 'latin1');
    out.set(msg.subarray(6), o);
    this.#stream.write(out);
  }

  #onData(chunk: Buffer): void {
    if (this.#runs.length === 0) {
      if (!this.#host.isBroken()) this.#pgListener(chunk);
      return;
    }
    let data: Buffer;
    let len: number;
    let base = 0; // where the head's answer starts in `data`
    if (this.#accLen === 0) {
      data = chunk;
      len = chunk.length;
    } else {
      this.#append(chunk);
      data = this.#acc!;
      len = this.#accLen;
    }
    let pos = base + this.#scan;
    while (pos + 5 <= len) {
      const run = this.#runs[0];
      const code = data[pos];
      const end = pos + 1 + data.readUInt32BE(pos + 1);
      if (end > len) break;
      if (code === D) {
        run.rows++;
        run.bytes += end - pos;
        const { maxRows, maxResultBytes } = this.#limits;
        if (maxRows > 0 && run.rows > maxRows) return this.#fail(run, Errors.resultTooLarge(this.#db, `maxRows = ${maxRows}`));
        if (maxResultBytes > 0 && run.bytes > maxResultBytes) return this.#fail(run, Errors.resultTooLarge(this.#db, `maxResultBytes = ${maxResultBytes}`));
      } else if (code === E) {
        run.sqlState ??= sqlStateOf(data, pos + 5, end);
      } else if (code === PARSE_COMPLETE) {
        run.parsed = true;
      } else if (code === COPY_IN) {
        // COPY … FROM STDIN: the server now waits for data a plain statement cannot send. Refuse
        // it as pg does (CopyFail); the server answers with an error and ReadyForQuery.
        this.#stream.write(COPY_FAIL);
      } else if (code === Z) {
        const answer = new Uint8Array(end - base);
        answer.set(data.subarray(base, end));
        this.#scan = 0;
        if (!this.#complete(run, answer, data[pos + 5])) return;
        base = end;
        if (this.#runs.length === 0) {
          // Whatever follows is pg's again (a notice, a notification).
          const rest = end < len ? Buffer.from(data.subarray(end, len)) : undefined;
          this.#acc = undefined;
          this.#accLen = 0;
          if (rest !== undefined) this.#pgListener(rest);
          return;
        }
      }
      pos = end;
    }
    // The head's answer goes on in a later read: keep what arrived of it.
    if (data === this.#acc) {
      if (base > 0) {
        this.#acc.copy(this.#acc, 0, base, len);
        this.#accLen = len - base;
      }
    } else {
      this.#accLen = 0;
      this.#append(data.subarray(base, len));
    }
    this.#scan = pos - base;
  }

  /** Settles the head with its answer; false when the session was given up (nothing more to read). */
  #complete(run: Running, answer: Uint8Array, status: number): boolean {
    this.#runs.shift();
    if (run.parsing && run.name !== undefined) {
      this.#parsing.delete(run.name);
      if (run.parsed) this.#host.preparedStatements()[run.name] = run.sql;
    }
    this.#host.setTransactionStatus(String.fromCharCode(status));
    const next = this.#runs[0];
    if (run.sqlState !== undefined && isFatalSqlState(run.sqlState)) {
      // The server ends the session after a fatal error: the thread reads CONNECTION_LOST from the answer.
      this.#settle(run, undefined, answer, true);
      this.#host.abort(Errors.connectionLost(this.#db, `server error ${run.sqlState}`));
      return false;
    }
    if (status !== IDLE && next !== undefined) {
      // Only statements that cannot open a transaction are pipelined (see the request handler);
      // should one have, the statements behind it ran inside it: end the session, which rolls
      // them back, and tell them so, rather than let their work vanish at the next reset.
      this.#settle(run, undefined, answer, true);
      this.#host.abort(Errors.connectionLost(this.#db, 'a pipelined statement left a transaction open; the session was closed'));
      return false;
    }
    if (!(status === IDLE && !run.retried && run.name !== undefined && this.#retry(run))) this.#settle(run, undefined, answer, true);
    if (this.#runs.length > 0) this.#startClock(this.#runs[0]);
    return true;
  }

  /**
   * After DDL changed a table's row type, PostgreSQL refuses the old plan (0A000, "cached plan
   * must not change result type"); a statement whose Parse failed earlier in its batch finds no
   * statement (26000). Outside a transaction neither had an effect: prepare the text again (under
   * a fresh name for a refused plan) and run it once more, at the end of the pipeline.
   */
  #retry(run: Running): boolean {
    const refusedPlan = run.sqlState === '0A000' && !run.parsing;
    const missing = run.sqlState === '26000' && !run.parsing;
    if (!refusedPlan && !missing) return false;
    run.retried = true;
    if (refusedPlan) delete this.#host.preparedStatements()[run.name!];
    this.#runs.push(run);
    this.#send(run, refusedPlan ? renameStatement(run.sql) : run.name);
    return true;
  }

  /** Ends a statement early (timeout, result too large): its caller gets `err`, the session is destroyed. */
  #fail(run: Running, err: BrokerError): void {
    if (!this.#runs.includes(run)) return;
    this.#settle(run, err);
    this.#host.abort(err);
  }

  /** Settles `run` once; `shifted` when the caller already took it off the pipeline. */
  #settle(run: Running, err: BrokerError | undefined, answer?: Uint8Array, shifted = false): void {
    if (!shifted) {
      const i = this.#runs.indexOf(run);
      if (i < 0) return;
      this.#runs.splice(i, 1);
    }
    if (this.#runs.length === 0) {
      this.#acc = undefined;
      this.#accLen = 0;
      this.#scan = 0;
      this.#parsing.clear();
    }
    if (run.timer !== undefined) clearTimeout(run.timer);
    run.timer = undefined;
    run.untrack();
    if (err !== undefined) run.reject(err);
    else run.resolve(answer!);
  }

  #append(chunk: Buffer): void {
    const need = this.#accLen + chunk.length;
    if (this.#acc === undefined || this.#acc.length < need) {
      const grown = Buffer.allocUnsafeSlow(Math.max(need, (this.#acc?.length ?? 0) * 2, 16384));
      if (this.#acc !== undefined) this.#acc.copy(grown, 0, 0, this.#accLen);
      this.#acc = grown;
    }
    chunk.copy(this.#acc, this.#accLen);
    this.#accLen = need;
  }
}

/** CopyFail with pg's own reason. */
const COPY_FAIL = ((): Buffer => {
  const reason = Buffer.from('No source stream defined\0');
  const out = Buffer.alloc(5 + reason.length);
  out[0] = 0x66;
  out.writeInt32BE(4 + reason.length, 1);
  reason.copy(out, 5);
  return out;
})();

function readInt32(b: Uint8Array, at: number): number {
  return ((b[at] << 24) | (b[at + 1] << 16) | (b[at + 2] << 8) | b[at + 3]) >>> 0;
}

/** Parse(name, text, no parameter types): 'P', length, name '\0', text '\0', int16 0. */
function parseMessage(name: string, sql: string): Buffer {
  const n = Buffer.byteLength(name);
  const t = Buffer.byteLength(sql);
  const out = Buffer.allocUnsafe(1 + 4 + n + 1 + t + 1 + 2);
  out[0] = 0x50;
  out.writeInt32BE(out.length - 1, 1);
  let o = 5;
  o += out.write(name, o, 'latin1');
  out[o++] = 0;
  o += out.write(sql, o, 'utf8');
  out[o++] = 0;
  out.writeInt16BE(0, o);
  return out;
}

/** The SQLSTATE ('C' field) of an ErrorResponse whose fields span [from, end). */
function sqlStateOf(b: Buffer, from: number, end: number): string | undefined {
  let p = from;
  while (p < end && b[p] !== 0) {
    const type = b[p++];
    const zero = b.indexOf(0, p);
    if (zero < 0 || zero >= end) return undefined;
    if (type === 0x43) return b.toString('latin1', p, zero);
    p = zero + 1;
  }
  return undefined;
}
