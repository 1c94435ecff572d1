/**
 * The broker's end of one thread's port: the hello handshake, one reply per request, and
 * reply batching. Replies completed in the same run of JavaScript (the answers one socket read
 * carried) go as one message at the end of it, with no added latency when idle; replies
 * completed later in the same event-loop turn are coalesced into one more message. Forwarded
 * answers travel by transfer, not by copy.
 * @module
 */
import { Errors } from '../errors.js';
import { PROTOCOL_VERSION, type HelloMessage, type OkReply, type ReadyMessage, type Reply, type Request } from './protocol.js';
import { serializeError } from './serialize-error.js';
import { addTransferable } from './transfer.js';

/** The minimal surface of a MessagePort the server needs. */
export interface Endpoint {
  postMessage(value: unknown, transfer?: readonly ArrayBuffer[]): void;
  on(event: 'message', listener: (value: unknown) => void): unknown;
  on(event: 'close', listener: () => void): unknown;
  close(): void;
  unref?(): void;
}

/** What the broker does with requests; implemented by the request handler. */
export interface RequestSink {
  /** Handles one request; must call `peer.reply` exactly once, eventually. */
  handle(req: Request, peer: Peer): void;
  /** A thread said hello on a new port. */
  peerArrived(peer: Peer): void;
  /** The peer's port closed or its thread died: settle what it owned. */
  peerGone(peer: Peer): void;
}

/** One connected thread, as the broker sees it. */
export class Peer {
  /** `threadId` of the thread at the other end, known after hello (-1 before). */
  thread = -1;
  /** Requests received and not yet answered. */
  pending = 0;
  /** Set once the port closed; replies are then dropped. */
  closed = false;
  readonly #endpoint: Endpoint;
  /** Replies waiting for the flush at the end of the current run of JavaScript. */
  #batch: Reply[] = [];
  /** True from a turn's first reply until the end of that turn's flushes. */
  #flushing = false;

  constructor(endpoint: Endpoint) {
    this.#endpoint = endpoint;
  }

  /** Sends one reply (exactly once per request). */
  reply(r: Reply): void {
    this.pending--;
    if (this.closed) return;
    this.#batch.push(r);
    if (this.#flushing) return;
    // The first flush of a turn waits only for the current run of JavaScript (every answer one
    // socket read resolved); later replies of the turn go together once it ends.
    this.#flushing = true;
    queueMicrotask(() => {
      this.#flush();
      setImmediate(() => {
        this.#flushing = false;
        this.#flush();
      });
    });
  }

  /** Replies with an error. */
  fail(id: number, err: unknown): void {
    this.reply({ id, e: serializeError(err) });
  }

  #flush(): void {
    const batch = this.#batch;
    if (batch.length === 0 || this.closed) return;
    this.#batch = [];
    this.#post(batch.length === 1 ? batch[0] : batch, batch);
  }

  #post(value: unknown, replies: readonly Reply[]): void {
    try {
      this.#endpoint.postMessage(value, transferables(replies));
    } catch (err) {
      // A value that cannot be cloned (rare driver types) must still answer its request.
      if (replies.length === 1) {
        this.#refuse(replies[0], err);
        return;
      }
      // Fix: one reply that cannot be cloned failed every reply batched with it. Send them one
      // by one; only the bad ones become errors.
      for (const r of replies) {
        try {
          this.#endpoint.postMessage(r, transferables([r]));
        } catch (e) {
          this.#refuse(r, e);
        }
      }
    }
  }

  #refuse(r: Reply, err: unknown): void {
    try {
      this.#endpoint.postMessage({ id: r.id, e: serializeError(Errors.invalidArgument(`result cannot be sent to the thread: ${(err as Error).message}`)) });
    } catch {
      /* the port is gone */
    }
  }

  /** Closes the port from the broker's side. */
  close(): void {
    this.closed = true;
    try {
      this.#endpoint.close();
    } catch {
      /* already closed */
    }
  }
}

/** The buffers of forwarded answers, moved to the thread rather than copied. */
function transferables(replies: readonly Reply[]): ArrayBuffer[] | undefined {
  let out: ArrayBuffer[] | undefined;
  for (const r of replies) out = addTransferable(out, (r as OkReply).w);
  return out;
}

/**
 * Serves one endpoint. `ready` is posted in answer to a valid hello; requests before it are refused.
 */
export function servePort(endpoint: Endpoint, sink: RequestSink, ready: () => ReadyMessage, onGone: (peer: Peer) => void): Peer {
  const peer = new Peer(endpoint);
  let greeted = false;
  const handleOne = (req: Request): void => {
    peer.pending++;
    try {
      sink.handle(req, peer);
    } catch (err) {
      peer.fail(req.id, err);
    }
  };
  endpoint.on('message', (msg: unknown) => {
    if (!greeted) {
      const hello = msg as HelloMessage;
      if (hello && hello.t === 'hello' && hello.v === PROTOCOL_VERSION && typeof hello.thread === 'number') {
        greeted = true;
        peer.thread = hello.thread;
        sink.peerArrived(peer);
        endpoint.postMessage(ready());
      } else {
        endpoint.postMessage({ t: 'refused', reason: `expected hello with protocol version ${PROTOCOL_VERSION}` });
        endpoint.close();
      }
      return;
    }
    if (Array.isArray(msg)) {
      for (const m of msg) handleOne(m as Request);
    } else {
      handleOne(msg as Request);
    }
  });
  endpoint.on('close', () => {
    peer.closed = true;
    if (greeted) sink.peerGone(peer);
    onGone(peer);
  });
  // The broker's own sockets keep the process alive while it runs; a port must not keep it alive after close().
  endpoint.unref?.();
  return peer;
}
