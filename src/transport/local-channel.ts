/**
 * An in-thread pair of endpoints with the MessagePort surface the client and server use, so the
 * main thread runs the same client code without paying for a structured clone. Delivery is
 * asynchronous (a microtask), as a port's is, so no caller sees a reply re-entrantly.
 * @module
 */
import { EventEmitter } from 'node:events';

/** One end of a {@link localChannel}. */
export class LocalEndpoint extends EventEmitter {
  peer: LocalEndpoint | undefined;
  #closed = false;

  /** Delivers `value` to the other end on a microtask. */
  postMessage(value: unknown): void {
    const peer = this.peer;
    if (this.#closed || peer === undefined) return;
    queueMicrotask(() => {
      if (!peer.#closed) peer.emit('message', value);
    });
  }

  /** Closes both ends; both emit 'close' once. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    const peer = this.peer;
    queueMicrotask(() => this.emit('close'));
    peer?.close();
  }

  ref(): void {}
  unref(): void {}
  start(): void {}
}

/** Two connected in-thread endpoints. */
export function localChannel(): [LocalEndpoint, LocalEndpoint] {
  const a = new LocalEndpoint();
  const b = new LocalEndpoint();
  a.peer = b;
  b.peer = a;
  return [a, b];
}
