/**
 * The broker's half of forwarded MySQL statements (issue 8), the counterpart of pg-forward.ts:
 * the calling thread encodes a COM_QUERY or COM_STMT_EXECUTE packet (wire/mysql-wire.ts), this
 * module writes it to one of the broker's connections and hands back the server's answer as
 * bytes, framed by packet headers and a few marker bytes, never parsed into rows.
 *
 * It sits under `mysql2` on the same socket: while forwarded statements run, the socket's bytes
 * come here instead of to mysql2's packet parser; between them they go to mysql2 as before, so
 * mysql2 still owns the session (handshake, prepares, transactions of reservations, reset, end).
 * @module
 */
import { Buffer } from 'node:buffer';
import type { Duplex } from 'node:stream';
import { BrokerError, Errors } from '../../errors.js';
import type { StatementLimits } from '../driver.js';

/** A payload of this length continues in the next packet (16 MiB − 1). */
const MAX_PAYLOAD = 0xffffff;
const OK = 0x00;
const ERR = 0xff;
const EOF = 0xfe;
const LOCAL_INFILE = 0xfb;
const COM_QUERY = 0x03;
const COM_STMT_EXECUTE = 0x17;
const SERVER_STATUS_IN_TRANS = 0x0001;
const SERVER_STATUS_AUTOCOMMIT = 0x0002;
const SERVER_MORE_RESULTS_EXISTS = 0x0008;

/** Where the answer to the head statement stands. */
const enum Stage {
  /** Expecting the first packet of a result: OK, ERR, a LOCAL INFILE request or a column count. */
  Head,
  /** Reading column definitions. */
  Columns,
  /** Expecting the EOF after the column definitions. */
  ColumnsEof,
  /** Reading rows, up to an EOF or an ERR. */
  Rows,
}

/** What the forwarder needs of its connection. */
export interface MysqlForwardHost {
  /** True once the session is unusable. */
  isBroken(): boolean;
  /** Records the session's state from the status word of the last OK or EOF packet. */
  setStatus(inTransaction: boolean, autocommitOff: boolean): void;
  /** Marks the session unusable (its waiting statements fail) and closes the socket. */
  abort(err: BrokerError): void;
  /** Registers a waiting statement to be failed if the session breaks; returns the unregister function. */
  track(fail: (err: BrokerError) => void): () => void;
}

/**
 * One statement to write: the thread's packet (4 header bytes the forwarder fills, then the
 * payload) and, for COM_STMT_EXECUTE, the statement id of this connection to write into it.
 */
export interface MysqlForwardPacket {
  /** The statement's text, as the driver spy and diagnostics see it (the packet names a prepared statement by id). */
  sql: string;
  msg: Uint8Array;
  statementId?: number;
}

interface Running {
  rows: number;
  bytes: number;
  stage: Stage;
  /** Column definitions still to come. */
  columns: number;
  /** The next packet continues a payload of 16 MiB − 1 (its first byte is data, not a marker). */
  continued: boolean;
  /** errno of the answer's ERR packet, if any. */
  errno: number | undefined;
  timer: NodeJS.Timeout | undefined;
  untrack: () => void;
  resolve: (answer: ForwardedAnswer) => void;
  reject: (err: BrokerError) => void;
}

/** A statement's whole answer, with the errno of its ERR packet when it failed. */
export interface ForwardedAnswer {
  bytes: Uint8Array;
  errno: number | undefined;
}

/**
 * One connection's forwarding. Built once the session is up; throws when mysql2's socket does
 * not have the single data listener it installs (an incompatible mysql2 version), rather than guess.
 *
 * Statements of one batch are pipelined: written in one socket write; the server reads commands
 * one after another and answers them in order, and an error in one does not touch the others.
 */
export class MysqlForwarder {
  readonly #stream: Duplex;
  readonly #mysqlListener: (chunk: Buffer) => void;
  readonly #host: MysqlForwardHost;
  readonly #db: string;
  readonly #limits: StatementLimits;
  /** Statements written and not answered yet, in the order written; the head's answer is arriving. */
  readonly #runs: Running[] = [];
  /** Bytes of the head's answer received so far, when it spans socket reads. */
  #acc: Buffer | undefined;
  #accLen = 0;
  /** Offset of the first packet of the answer not examined yet. */
  #scan = 0;

  constructor(stream: Duplex, host: MysqlForwardHost, db: string, limits: StatementLimits) {
    const listeners = stream.listeners('data');
    if (listeners.length !== 1) throw new Error(`mysql2's socket has ${listeners.length} data listeners, expected its packet parser alone`);
    this.#stream = stream;
    this.#mysqlListener = listeners[0] as (chunk: Buffer) => void;
    this.#host = host;
    this.#db = db;
    this.#limits = limits;
    stream.removeListener('data', this.#mysqlListener);
    stream.on('data', (chunk: Buffer) => this.#onData(chunk));
  }

  /** True while forwarded statements run (the session is not mysql2's to use). */
  get busy(): boolean {
    return this.#runs.length > 0;
  }

  /**
   * Writes the packets, pipelined; each promise resolves with the server's whole answer to its
   * statement (every packet up to the end of its last result). Server errors are in the answer
   * (the thread decodes them); rejections are the broker's own: `CONNECTION_LOST`,
   * `QUERY_TIMEOUT`, `RESULT_TOO_LARGE` (which end the session, and so fail the statements
   * behind it with `CONNECTION_LOST`).
   */
  forward(batch: readonly MysqlForwardPacket[]): Promise<ForwardedAnswer>[] {
    if (this.#host.isBroken()) return batch.map(() => Promise.reject(Errors.connectionLost(this.#db, 'the connection is closed')));
    if (this.#runs.length > 0) return batch.map(() => Promise.reject(new BrokerError('INVALID_ARGUMENT', 'forwarded statements are already running on this connection')));
    this.#stream.cork();
    try {
      return batch.map(({ msg, statementId }) => {
        const command = msg.length > 4 ? msg[4] : -1;
        if (command !== COM_QUERY && command !== COM_STMT_EXECUTE) return Promise.reject(Errors.invalidArgument('not a COM_QUERY or COM_STMT_EXECUTE packet'));
        if ((command === COM_STMT_EXECUTE) !== (statementId !== undefined)) return Promise.reject(Errors.invalidArgument('a COM_STMT_EXECUTE packet needs its statement id'));
        return new Promise<ForwardedAnswer>((resolve, reject) => {
          const run: Running = {
            rows: 0, bytes: 0, stage: Stage.Head, columns: 0, continued: false, errno: undefined,
            timer: undefined, untrack: () => undefined, resolve, reject,
          };
          run.untrack = this.#host.track((err) => this.#settle(run, err));
          this.#runs.push(run);
          if (this.#runs.length === 1) this.#startClock(run);
          if (statementId !== undefined) writeUInt32LE(msg, statementId, 5);
          for (const part of framed(msg)) this.#stream.write(part);
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

  #onData(chunk: Buffer): void {
    if (this.#runs.length === 0) {
      if (!this.#host.isBroken()) this.#mysqlListener(chunk);
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
    while (pos + 4 <= len) {
      const size = data[pos] | (data[pos + 1] << 8) | (data[pos + 2] << 16);
      const end = pos + 4 + size;
      if (end > len) break;
      const run = this.#runs[0];
      const done = this.#packet(run, data, pos + 4, size, data[pos + 3]);
      if (done === undefined) return; // the session was given up
      pos = end;
      if (done) {
        const answer = new Uint8Array(end - base);
        answer.set(data.subarray(base, end));
        this.#scan = 0;
        base = end;
        this.#complete(run, answer);
        if (this.#runs.length === 0) {
          // Whatever follows is mysql2's again (nothing should: it has no command running).
          const rest = end < len ? Buffer.from(data.subarray(end, len)) : undefined;
          this.#acc = undefined;
          this.#accLen = 0;
          if (rest !== undefined && !this.#host.isBroken()) this.#mysqlListener(rest);
          return;
        }
      }
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

  /**
   * Examines one packet of the head's answer (payload at `at`, `size` bytes): true when it ends
   * the answer, false when more follow, undefined when the session was given up.
   */
  #packet(run: Running, data: Buffer, at: number, size: number, seq: number): boolean | undefined {
    const continued = run.continued;
    run.continued = size === MAX_PAYLOAD;
    if (continued) {
      // The rest of a long row.
      return this.#count(run, size, false);
    }
    const marker = size > 0 ? data[at] : -1;
    switch (run.stage) {
      case Stage.Head:
        if (marker === OK) return this.#ended(run, okStatus(data, at, size));
        if (marker === ERR) return this.#error(run, data, at, size);
        if (marker === LOCAL_INFILE) {
          // LOAD DATA LOCAL: the server asks for a file (only a server that ignores our capability
          // flags can). Send none: an empty packet ends the transfer; the server answers OK or ERR.
          this.#stream.write(Buffer.from([0, 0, 0, (seq + 1) & 0xff]));
          return false;
        }
        run.columns = readLenenc(data, at);
        if (!(run.columns > 0)) return this.#protocolError(run, 'a result without columns');
        run.stage = Stage.Columns;
        return false;
      case Stage.Columns:
        if (--run.columns === 0) run.stage = Stage.ColumnsEof;
        return false;
      case Stage.ColumnsEof:
        if (marker !== EOF || size >= 9) return this.#protocolError(run, 'no EOF after the column definitions');
        run.stage = Stage.Rows;
        return false;
      default:
        // A row never starts with 0xFF (no length prefix does), and starts with 0xFE only when
        // its first value is 2^24 bytes or longer, in a packet far above 9 bytes.
        if (marker === EOF && size < 9) return this.#ended(run, size >= 5 ? data[at + 3] | (data[at + 4] << 8) : 0);
        if (marker === ERR) return this.#error(run, data, at, size);
        return this.#count(run, size, true);
    }
  }

  /** Counts a row (or the rest of one) against the limits; undefined when one was passed. */
  #count(run: Running, size: number, row: boolean): false | undefined {
    if (row) run.rows++;
    run.bytes += size;
    const { maxRows, maxResultBytes } = this.#limits;
    if (maxRows > 0 && run.rows > maxRows) return this.#fail(run, Errors.resultTooLarge(this.#db, `maxRows = ${maxRows}`));
    if (maxResultBytes > 0 && run.bytes > maxResultBytes) return this.#fail(run, Errors.resultTooLarge(this.#db, `maxResultBytes = ${maxResultBytes}`));
    return false;
  }

  /** An OK or EOF ended a result: the answer ends unless more results follow. */
  #ended(run: Running, status: number): boolean {
    this.#host.setStatus((status & SERVER_STATUS_IN_TRANS) !== 0, (status & SERVER_STATUS_AUTOCOMMIT) === 0);
    if ((status & SERVER_MORE_RESULTS_EXISTS) === 0) return true;
    run.stage = Stage.Head;
    return false;
  }

  /** An ERR ends the answer: no result follows an error. */
  #error(run: Running, data: Buffer, at: number, size: number): true {
    run.errno = size >= 3 ? data[at + 1] | (data[at + 2] << 8) : undefined;
    return true;
  }

  /** Bytes that do not follow the protocol: the session cannot be trusted any more. */
  #protocolError(run: Running, what: string): undefined {
    return this.#fail(run, Errors.connectionLost(this.#db, `unexpected answer from the server: ${what}`));
  }

  #complete(run: Running, bytes: Uint8Array): void {
    this.#runs.shift();
    this.#settle(run, undefined, { bytes, errno: run.errno }, true);
    if (this.#runs.length > 0) this.#startClock(this.#runs[0]);
  }

  /** Ends a statement early (timeout, result too large): its caller gets `err`, the session is destroyed. */
  #fail(run: Running, err: BrokerError): undefined {
    if (!this.#runs.includes(run)) return undefined;
    this.#settle(run, err);
    this.#host.abort(err);
    return undefined;
  }

  /** Settles `run` once; `shifted` when the caller already took it off the pipeline. */
  #settle(run: Running, err: BrokerError | undefined, answer?: ForwardedAnswer, shifted = false): void {
    if (!shifted) {
      const i = this.#runs.indexOf(run);
      if (i < 0) return;
      this.#runs.splice(i, 1);
    }
    if (this.#runs.length === 0) {
      this.#acc = undefined;
      this.#accLen = 0;
      this.#scan = 0;
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

/**
 * The thread's packet with its header written: sequence id 0 and the payload length, or, for a
 * payload of 16 MiB − 1 or more, split into packets of that size with a header each (and an
 * empty one after an exact multiple), as the protocol wants.
 */
export function framed(msg: Uint8Array): Uint8Array[] {
  const payload = msg.length - 4;
  if (payload < MAX_PAYLOAD) {
    msg[0] = payload & 0xff;
    msg[1] = (payload >> 8) & 0xff;
    msg[2] = (payload >> 16) & 0xff;
    msg[3] = 0;
    return [msg];
  }
  const parts: Uint8Array[] = [];
  let seq = 0;
  for (let from = 4; ; from += MAX_PAYLOAD) {
    const n = Math.min(MAX_PAYLOAD, msg.length - from);
    parts.push(Uint8Array.of(n & 0xff, (n >> 8) & 0xff, (n >> 16) & 0xff, seq++ & 0xff), msg.subarray(from, from + n));
    if (n < MAX_PAYLOAD) return parts;
  }
}

function writeUInt32LE(b: Uint8Array, v: number, at: number): void {
  b[at] = v & 0xff;
  b[at + 1] = (v >>> 8) & 0xff;
  b[at + 2] = (v >>> 16) & 0xff;
  b[at + 3] = (v >>> 24) & 0xff;
}

/** A length-encoded integer (a column count or affected rows); NaN for the NULL and ERR markers. */
function readLenenc(b: Buffer, at: number): number {
  const first = b[at];
  if (first < 0xfb) return first;
  if (first === 0xfc) return b[at + 1] | (b[at + 2] << 8);
  if (first === 0xfd) return b[at + 1] | (b[at + 2] << 8) | (b[at + 3] << 16);
  if (first === 0xfe) return Number(b.readBigUInt64LE(at + 1));
  return Number.NaN;
}

/** Size of the length-encoded integer at `at`. */
function lenencSize(b: Buffer, at: number): number {
  const first = b[at];
  return first < 0xfb ? 1 : first === 0xfc ? 3 : first === 0xfd ? 4 : 9;
}

/** The status word of an OK packet (after its affected rows and last insert id). */
function okStatus(b: Buffer, at: number, size: number): number {
  let p = at + 1;
  p += lenencSize(b, p);
  p += lenencSize(b, p);
  return p + 2 <= at + size ? b[p] | (b[p + 1] << 8) : 0;
}
