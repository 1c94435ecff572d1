/**
 * Host of `broker.spawn(module)`: imports the module and exposes its exports over comlink on
 * `parentPort`. The module's own `connect()` finds the broker through `workerData`.
 */
import { parentPort, workerData } from 'node:worker_threads';
import * as Comlink from 'comlink';
import nodeEndpoint from 'comlink/dist/esm/node-adapter.mjs';
import { BrokerError, FIELD_KEYS } from '../src/errors.js';

// Fix: comlink sends a thrown error as message, name and stack only, so a BrokerError thrown by
// the module reached the main thread without its code or server fields. Send the code and the
// whitelisted fields too (never `cause` or anything else); the main side (spawnEndpoint in
// src/wiring/wiring.ts) rebuilds a BrokerError, and plain comlink copies them onto its Error.
const original = Comlink.transferHandlers.get('throw')!;
Comlink.transferHandlers.set('throw', {
  canHandle: original.canHandle,
  serialize(thrown: unknown) {
    const value = (thrown as { value: unknown }).value;
    // By shape as well as by class: the module may load another copy of threadbroker.
    if (!(value instanceof Error) || value.name !== 'BrokerError' || typeof (value as BrokerError).code !== 'string') return original.serialize(thrown);
    let fields: Record<string, string | number> | undefined;
    for (const key of FIELD_KEYS) {
      const v = (value as unknown as Record<string, unknown>)[key];
      if (typeof v === 'string' || typeof v === 'number') (fields ??= {})[key] = v;
    }
    const wire = { name: 'BrokerError', code: (value as BrokerError).code, message: value.message, stack: value.stack, ...fields, fields };
    return [{ isError: true, value: wire }, []];
  },
  deserialize: original.deserialize,
});

const wiring = (workerData as Record<string, { module: string }>)['threadbroker:wiring'];
const mod = (await import(wiring.module)) as Record<string, unknown>;
Comlink.expose(mod, nodeEndpoint(parentPort!));
