/**
 * How each kind of thread gets its port to the broker (DESIGN.md "Wiring"). Main-side helpers;
 * the thread side of each lives in `src/worker.ts` and `workers/`.
 * @module
 */
import { MessageChannel, type MessagePort, type Worker } from 'node:worker_threads';
import * as Comlink from 'comlink';
import nodeEndpoint from 'comlink/dist/esm/node-adapter.mjs';
import { BrokerError, Errors, type ErrorCode } from '../errors.js';
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

// ---- broker.spawn: the main side of the comlink channel ----

/** Name of the comlink transfer handler that rebuilds a thrown BrokerError in the main thread. */
export const COMLINK_ERROR_HANDLER = 'threadbroker:error';

/** A BrokerError as the comlink host sends it: code, message, stack and whitelisted fields only. */
export interface ComlinkWireError {
  name: 'BrokerError';
  code: string;
  message: string;
  stack?: string;
  fields?: Record<string, string | number>;
}

function rebuild(w: ComlinkWireError): BrokerError {
  const err = new BrokerError(w.code as ErrorCode, w.message, w.fields as never);
  if (w.stack !== undefined) err.stack = w.stack;
  return err;
}

// Registered once under our own name, so it changes nothing for other comlink users: the main
// side only ever gets this name from spawnEndpoint below.
Comlink.transferHandlers.set(COMLINK_ERROR_HANDLER, {
  canHandle: (_v: unknown): _v is never => false,
  serialize: () => {
    throw new TypeError(`${COMLINK_ERROR_HANDLER} only deserialises`);
  },
  deserialize: (w: unknown) => {
    throw rebuild(w as ComlinkWireError);
  },
});

type Listener = Parameters<Comlink.Endpoint['addEventListener']>[1];
type Transfer = Parameters<Comlink.Endpoint['postMessage']>[1];
type Event = Parameters<Extract<Listener, (...a: never[]) => unknown>>[0];

function call(l: Listener, data: unknown): void {
  const ev = { data } as unknown as Event;
  if (typeof l === 'function') l(ev);
  else l.handleEvent(ev);
}

interface ComlinkMessage {
  id?: string;
  type?: string;
  name?: string;
  value?: { isError?: boolean; value?: Partial<ComlinkWireError> };
}

/**
 * The endpoint `broker.spawn` should give `Comlink.wrap` instead of `nodeEndpoint(worker)`:
 * - a BrokerError thrown by the module arrives as a BrokerError with its code and server fields
 *   (the host sends them; comlink alone sends message, name and stack, and builds a plain Error);
 * - when the worker exits (crash, `process.exit`, `terminate()`, `broker.close()`), every call in
 *   flight and every later call rejects at once (`THREAD_EXITED`, or `BROKER_CLOSED` once the
 *   broker is closing) instead of waiting forever: comlink has no notion of a dead endpoint.
 */
export function spawnEndpoint(worker: Worker, closing: () => boolean): Comlink.Endpoint {
  const inner = nodeEndpoint(worker);
  const pending = new Map<string, string | undefined>();
  const listeners = new Map<Listener, (ev: Event) => void>();
  let gone: BrokerError | undefined;
  const dispatch = (data: unknown): void => {
    for (const l of listeners.keys()) call(l, data);
  };
  const refuse = (id: string, type: string | undefined): void => {
    // A release of a dead proxy simply succeeds; everything else rejects.
    if (type === 'RELEASE') dispatch({ id, type: 'RAW', value: undefined });
    else dispatch({ id, type: 'HANDLER', name: COMLINK_ERROR_HANDLER, value: { name: 'BrokerError', code: gone!.code, message: gone!.message } });
  };
  worker.once('exit', (code: number) => {
    gone = closing() ? Errors.brokerClosed() : Errors.threadExited(`the spawned worker exited (code ${code}); the call cannot complete`);
    for (const [id, type] of pending) refuse(id, type);
    pending.clear();
  });
  return {
    postMessage(message: ComlinkMessage, transfer?: Transfer): void {
      const id = message?.id;
      if (gone !== undefined) {
        if (id !== undefined) queueMicrotask(() => refuse(id, message.type));
        return;
      }
      if (id !== undefined) pending.set(id, message.type);
      inner.postMessage(message, transfer);
    },
    addEventListener(type: string, listener: Listener): void {
      const wrapped = (ev: Event): void => {
        let data = (ev as { data: unknown }).data as ComlinkMessage;
        if (data?.id !== undefined) pending.delete(data.id);
        const thrown = data?.type === 'HANDLER' && data.name === 'throw' && data.value?.isError === true ? data.value.value : undefined;
        if (thrown?.name === 'BrokerError' && typeof thrown.code === 'string') {
          data = { ...data, name: COMLINK_ERROR_HANDLER, value: thrown as never };
        }
        call(listener, data);
      };
      listeners.set(listener, wrapped);
      inner.addEventListener(type, wrapped);
    },
    removeEventListener(type: string, listener: Listener): void {
      const wrapped = listeners.get(listener);
      if (wrapped === undefined) return;
      listeners.delete(listener);
      inner.removeEventListener(type, wrapped);
    },
    start: inner.start,
  };
}
