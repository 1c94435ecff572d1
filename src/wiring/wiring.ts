/**
 * How each kind of thread gets its port to the broker (DESIGN.md "Wiring"). Main-side helpers;
 * the thread side of each lives in `src/worker.ts` and `workers/`.
 * @module
 */
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { WIRE_KEY } from '../transport/protocol.js';

/** Accepts the broker's end of a new port. */
export type Accept = (port: MessagePort) => void;

/** A hello posted by a thread on `parentPort` (piscina re-emits it as the pool's 'message'). */
export interface HelloOnParent {
  [WIRE_KEY]: 'hello';
  brokerId: string;
  port: MessagePort;
}

/** True when `msg` is a hello for broker `brokerId`. */
export function isHello(msg: unknown, brokerId: string): msg is HelloOnParent {
  const m = msg as Partial<HelloOnParent> | null;
  return typeof m === 'object' && m !== null && m[WIRE_KEY] === 'hello' && m.brokerId === brokerId && m.port !== undefined;
}

/** Makes a channel, hands one end to the broker and returns the other for the thread. */
export function newThreadPort(accept: Accept): MessagePort {
  const { port1, port2 } = new MessageChannel();
  accept(port1);
  return port2;
}

/** Puts the wiring into `workerData`, keeping the user's own data beside it. */
export function wireWorkerData(user: unknown, wiring: Record<string, unknown>): Record<string, unknown> {
  if (user !== undefined && (typeof user !== 'object' || user === null || Array.isArray(user) || Object.getPrototypeOf(user) !== Object.prototype)) {
    throw new TypeError('workerData of a wired worker must be a plain object (the wiring travels in it under "threadbroker:wiring")');
  }
  return { ...(user as Record<string, unknown> | undefined), [WIRE_KEY]: wiring };
}
