/**
 * One request in, exactly one reply out. Plain queries go straight to the pool; reservation
 * requests go to the reservation manager.
 * @module
 */
import { NotForwarded, type RawResult } from '../drivers/driver.js';
import { Errors } from '../errors.js';
import type { Pool } from '../pool/pool.js';
import type { Peer, RequestSink } from '../transport/port-server.js';
import type { ForwardRequest, OkReply, QueryRequest, Request } from '../transport/protocol.js';
import { requestBytes } from '../transport/request-size.js';
import type { Reservations } from './reservations.js';

/** One SELECT and nothing else (no `;` but a trailing one). */
const ONE_SELECT = /^\s*select\b[^;]*;?\s*$/i;

/**
 * Whether a forwarded statement may share a pipeline with others on one connection: only a
 * single SELECT. It cannot open a transaction that the statements behind it would run in, and
 * should a statement ahead of it hit a limit (which closes the connection), it failed having
 * written nothing: writes never wait behind another statement on a shared connection.
 */
export function pipelinable(req: ForwardRequest): boolean {
  return ONE_SELECT.test(req.sql);
}

/** Dispatches requests from every connected thread. */
export class RequestHandler implements RequestSink {
  readonly #pools: Map<string, Pool>;
  readonly #reservations: Reservations;
  /** `maxRequestBytes` by database name (0 = no limit). */
  readonly #maxRequestBytes: Map<string, number>;
  #closed = false;

  constructor(pools: Map<string, Pool>, reservations: Reservations, maxRequestBytes: Map<string, number> = new Map()) {
    this.#pools = pools;
    this.#reservations = reservations;
    this.#maxRequestBytes = maxRequestBytes;
  }

  /** From now on every request is refused with `BROKER_CLOSED`. */
  close(): void {
    this.#closed = true;
  }

  handle(req: Request, peer: Peer): void {
    if (this.#closed) {
      peer.fail(req.id, Errors.brokerClosed());
      return;
    }
    if (req.t === 'fq') {
      this.#forward(req, peer);
      return;
    }
    if (req.t === 'q') {
      // The client refuses oversized requests before sending them; this catches threads that bypass it.
      const limit = this.#maxRequestBytes.get(req.db) ?? 0;
      if (limit > 0) {
        const bytes = requestBytes(req.sql, req.params, limit);
        if (bytes > limit) {
          peer.fail(req.id, Errors.requestTooLarge(String(req.db), bytes, limit));
          return;
        }
      }
      if (req.rs === undefined) this.#query(req, peer);
      else this.#reservations.query(req, peer);
      return;
    }
    this.#reservations.handle(req, peer);
  }

  #query(req: QueryRequest, peer: Peer): void {
    const pool = this.#pools.get(req.db);
    if (pool === undefined) {
      peer.fail(req.id, Errors.unknownDatabase(String(req.db), [...this.#pools.keys()]));
      return;
    }
    if (typeof req.sql !== 'string') {
      peer.fail(req.id, Errors.invalidArgument('sql must be a string'));
      return;
    }
    if (this.#reservations.wouldDeadlock(pool, peer)) {
      peer.fail(req.id, Errors.poolDeadlock(pool.name, pool.stats()));
      return;
    }
    // The peer is the owner of the wait, so the waits of a thread that dies can be dropped.
    pool.query(req.sql, req.params, peer).then(
      (res) => peer.reply(toReply(req.id, res)),
      (err) => peer.fail(req.id, err),
    );
  }

  #forward(req: ForwardRequest, peer: Peer): void {
    const pool = this.#pools.get(req.db);
    if (pool === undefined) {
      peer.fail(req.id, Errors.unknownDatabase(String(req.db), [...this.#pools.keys()]));
      return;
    }
    if (typeof req.sql !== 'string' || !(req.m instanceof Uint8Array)) {
      peer.fail(req.id, Errors.invalidArgument('a forwarded statement needs its sql and message bytes'));
      return;
    }
    const limit = this.#maxRequestBytes.get(req.db) ?? 0;
    if (limit > 0) {
      const bytes = req.sql.length + req.m.length;
      if (bytes > limit) {
        peer.fail(req.id, Errors.requestTooLarge(req.db, bytes, limit));
        return;
      }
    }
    if (this.#reservations.wouldDeadlock(pool, peer)) {
      peer.fail(req.id, Errors.poolDeadlock(pool.name, pool.stats()));
      return;
    }
    if (req.p !== undefined && !(Number.isInteger(req.p) && req.p >= 0)) {
      peer.fail(req.id, Errors.invalidArgument('the parameter count of a forwarded statement must be a whole number'));
      return;
    }
    pool.forward({ sql: req.sql, msg: req.m, params: req.p }, peer, pipelinable(req)).then(
      (w) => peer.reply({ id: req.id, w }),
      (err: unknown) => {
        // The thread sends it again as a plain query (and, when the reason lasts, every later one with this text).
        if (err instanceof NotForwarded) peer.reply({ id: req.id, q: err.lasting ? 2 : 1 });
        else peer.fail(req.id, err);
      },
    );
  }

  peerArrived(peer: Peer): void {
    this.#reservations.peerArrived(peer);
  }

  peerGone(peer: Peer): void {
    // Fix: plain queries a dead thread left queued in a pool kept their place in the FIFO and ran
    // later for nobody (their replies are dropped), holding up live threads and keeping `waiting`
    // up: drop them now. Statements already running finish and return their connection.
    for (const pool of this.#pools.values()) pool.abandon(peer);
    this.#reservations.peerGone(peer);
  }
}

/** The wire form of a result: arrays of values and the column names once. */
export function toReply(id: number, res: RawResult): OkReply {
  const out: OkReply = { id, n: res.rowCount };
  if (res.fields.length > 0) {
    out.f = res.fields;
    out.r = res.rows;
  }
  if (res.insertId !== undefined) out.i = res.insertId;
  return out;
}
