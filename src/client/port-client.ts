/**
 * The thread's end of its port: correlates replies with requests, batches requests made in the
 * same turn into one message, and keeps the thread alive only while a reply is awaited (an idle
 * client must not stop a finished worker from exiting).
 * @module
 */
import { threadId } from 'node:worker_threads';
import { BrokerError, Errors } from '../errors.js';
import { PROTOCOL_VERSION, type EnvData, type OkReply, type ReadyMessage, type Reply, type Request } from '../transport/protocol.js';
import { requestBytes } from '../transport/request-size.js';
import { deserializeError } from '../transport/serialize-error.js';
import { addTransferable } from '../transport/transfer.js';

/** The port surface the client needs (a MessagePort or a local endpoint). */
export interface ClientEndpoint {
  postMessage(value: unknown, transfer?: readonly ArrayBuffer[]): void;
  on(event: 'message', listener: (value: unknown) => void): unknown;
  on(event: 'close', listener: () => void): unknown;
  close(): void;
  ref?(): void;
  unref?(): void;
  start?(): void;
}

interface Pending {
  resolve: (r: OkReply) => void;
  reject: (e: Error) => void;
  callSite: { stack?: string };
}

/** Distributes a request without its id; the client assigns one. */
export type Outgoing = Request extends infer R ? (R extends { id: number } ? Omit<R, 'id'> : never) : never;

/** How long a thread waits for the broker's answer to hello. */
export const HELLO_TIMEOUT_MILLIS = 10_000;

/** The buffers of forwarded statements' messages, moved to the broker rather than copied. */
function transferables(requests: readonly Request[]): ArrayBuffer[] | undefined {
  let out: ArrayBuffer[] | undefined;
  for (const r of requests) if (r.t === 'fq') out = addTransferable(out, r.m);
  return out;
}

/** A connected client endpoint. */
export class PortClient {
  readonly env: EnvData;
  readonly #endpoint: ClientEndpoint;
  readonly #pending = new Map<number, Pending>();
  #nextId = 1;
  #outbox: Request[] | undefined;
  #closed: BrokerError | undefined;

  private constructor(endpoint: ClientEndpoint, env: EnvData) {
    this.#endpoint = endpoint;
    this.env = env;
    endpoint.on('message', (msg) => this.#onMessage(msg));
    endpoint.on('close', () => this.#onClose(Errors.brokerClosed()));
    // Adding a 'message' listener refs the port; an idle client must not keep its thread alive.
    endpoint.unref?.();
  }

  /** Says hello and waits (bounded) for the broker's ready. */
  static open(endpoint: ClientEndpoint, timeoutMillis = HELLO_TIMEOUT_MILLIS): Promise<PortClient> {
    return new Promise((resolve, reject) => {
      const onMessage = (msg: unknown): void => {
        const m = msg as ReadyMessage | { t: 'refused'; reason: string };
        if (m?.t === 'ready' && m.v === PROTOCOL_VERSION) {
          cleanup();
          resolve(new PortClient(endpoint, m.env));
        } else if (m?.t === 'refused') {
          cleanup();
          reject(Errors.notWired(`the broker refused this thread: ${m.reason}`));
        }
      };
      const onClose = (): void => {
        cleanup();
        reject(Errors.brokerClosed());
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(Errors.notWired(`no broker answered within ${timeoutMillis}ms; is this thread wired (broker.piscina/tinypool/worker/spawn, or connect(broker.port()))?`));
      }, timeoutMillis);
      const cleanup = (): void => {
        clearTimeout(timer);
        (endpoint as unknown as { off(e: string, l: unknown): void }).off('message', onMessage);
        (endpoint as unknown as { off(e: string, l: unknown): void }).off('close', onClose);
      };
      endpoint.on('message', onMessage);
      endpoint.on('close', onClose);
      endpoint.start?.();
      endpoint.postMessage({ t: 'hello', v: PROTOCOL_VERSION, thread: threadId });
    });
  }

  /**
   * For an in-thread endpoint whose broker is known: says hello and is usable at once (the
   * broker reads hello before any request, since one endpoint delivers in order).
   */
  static preopened(endpoint: ClientEndpoint, env: EnvData): PortClient {
    const client = new PortClient(endpoint, env);
    endpoint.postMessage({ t: 'hello', v: PROTOCOL_VERSION, thread: threadId });
    return client;
  }

  /** True once the broker side is gone. */
  get closed(): boolean {
    return this.#closed !== undefined;
  }

  /**
   * Sends one request. `callSite` is captured by the public method the user called, so a
   * rejected promise carries the user's stack.
   */
  request(req: Outgoing, callSite: { stack?: string }): Promise<OkReply> {
    if (this.#closed !== undefined) return Promise.reject(deserializeError({ code: this.#closed.code, message: this.#closed.message }, callSite));
    if (req.t === 'q') {
      const refused = this.refuseOversized(req.db, req.sql, req.params, callSite);
      if (refused !== undefined) return Promise.reject(refused);
    }
    const id = this.#nextId++;
    const full = { ...req, id } as Request;
    return new Promise<OkReply>((resolve, reject) => {
      if (this.#pending.size === 0) this.#endpoint.ref?.();
      this.#pending.set(id, { resolve, reject, callSite });
      if (this.#outbox === undefined) {
        this.#outbox = [full];
        // Requests made in the same synchronous run (Promise.all of many queries) go as one message.
        queueMicrotask(() => this.#flush());
      } else {
        this.#outbox.push(full);
      }
    });
  }

  /**
   * `REQUEST_TOO_LARGE` (with the caller's stack) when the statement and its values exceed the
   * database's `maxRequestBytes`. Fix (RELIABILITY.md S6): a huge parameter array was cloned into
   * the main thread before anything could refuse it; it is refused here, before it is posted.
   */
  refuseOversized(db: string, sql: string, params: readonly unknown[] | undefined, callSite: { stack?: string }): BrokerError | undefined {
    const limit = this.env.maxRequestBytes?.[this.env.databases.indexOf(db)] ?? 0;
    if (limit <= 0) return undefined;
    const bytes = requestBytes(sql, params, limit);
    if (bytes <= limit) return undefined;
    const err = Errors.requestTooLarge(db, bytes, limit);
    return deserializeError({ code: err.code, message: err.message, fields: { database: db } }, callSite);
  }

  #flush(): void {
    const out = this.#outbox;
    this.#outbox = undefined;
    if (out === undefined) return;
    try {
      this.#endpoint.postMessage(out.length === 1 ? out[0] : out, transferables(out));
    } catch (err) {
      if (out.length === 1) {
        this.#refuse(out[0], err);
        return;
      }
      // Fix: one request that cannot be cloned (a function parameter) failed every request
      // batched with it in the same turn. Send them one by one; only the bad ones fail.
      for (const r of out) {
        try {
          this.#endpoint.postMessage(r, transferables([r]));
        } catch (e) {
          this.#refuse(r, e);
        }
      }
    }
  }

  #refuse(r: Request, err: unknown): void {
    this.#settle({ id: r.id, e: { code: 'INVALID_ARGUMENT', message: `request cannot be sent to the broker: ${(err as Error).message}` } });
  }

  #onMessage(msg: unknown): void {
    if (Array.isArray(msg)) {
      for (const r of msg) this.#settle(r as Reply);
    } else if ((msg as { id?: unknown })?.id !== undefined) {
      this.#settle(msg as Reply);
    }
  }

  #settle(r: Reply): void {
    const p = this.#pending.get(r.id);
    if (p === undefined) return;
    this.#pending.delete(r.id);
    if (this.#pending.size === 0) this.#endpoint.unref?.();
    if ('e' in r) p.reject(deserializeError(r.e, p.callSite));
    else p.resolve(r);
  }

  #onClose(err: BrokerError): void {
    if (this.#closed !== undefined) return;
    this.#closed = err;
    for (const [, p] of this.#pending) p.reject(deserializeError({ code: err.code, message: err.message }, p.callSite));
    this.#pending.clear();
  }

  /** Closes this thread's port; pending requests reject with `BROKER_CLOSED`. */
  close(): void {
    this.#onClose(Errors.brokerClosed());
    this.#endpoint.close();
  }
}
