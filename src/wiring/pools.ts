/**
 * Wiring of thread pools: piscina (threads post a hello with their port on `parentPort`, which
 * piscina re-emits as the pool's 'message'), and tinypool (which refuses unknown `parentPort`
 * messages, so the port rides in each task's `transferList` to a small entry that connects and
 * then runs the user's module).
 * @module
 */
import { fileURLToPath } from 'node:url';
import { MessageChannel } from 'node:worker_threads';
import type { Piscina } from 'piscina';
import type Tinypool from 'tinypool';
import type { Options as TinypoolOptions } from 'tinypool';
import { Errors } from '../errors.js';
/** Options of a piscina pool. */
export type PiscinaOptions = NonNullable<ConstructorParameters<typeof Piscina>[0]>;

import { WIRE_KEY } from '../transport/protocol.js';
import { isHello, type Accept } from './wiring.js';

/** Optional peer modules, imported once when the broker starts (wiring calls stay synchronous). */
export interface PeerModules {
  piscina?: { Piscina: new (o: PiscinaOptions) => Piscina };
  tinypool?: { Tinypool?: typeof Tinypool; default?: typeof Tinypool };
}

/** Imports the optional pool libraries that are installed. */
export async function loadPeerModules(): Promise<PeerModules> {
  const [piscina, tinypool] = await Promise.all([
    import('piscina').catch(() => undefined),
    import('tinypool').catch(() => undefined),
  ]);
  return { piscina: piscina as PeerModules['piscina'], tinypool: tinypool as PeerModules['tinypool'] };
}

function missing(name: string): Error {
  return Errors.invalidArgument(`${name} is not installed; add it to your dependencies (npm i ${name})`);
}

/** A piscina pool whose workers are wired to the broker. */
export function wirePiscina(mods: PeerModules, opts: PiscinaOptions, brokerId: string, accept: Accept): Piscina {
  if ((opts as { atomics?: string }).atomics === 'sync') {
    // Sync atomics block the worker's event loop between tasks, so broker replies and lease work stall.
    throw Errors.invalidArgument("piscina's atomics: 'sync' blocks the worker's event loop between tasks; use 'async' (the default here) or 'disabled'");
  }
  const mod = mods.piscina;
  if (mod === undefined) throw missing('piscina');
  const pool = new mod.Piscina({ atomics: 'async', ...opts } as PiscinaOptions);
  pool.on('message', (msg: unknown) => {
    if (isHello(msg, brokerId)) accept(msg.port);
  });
  return pool;
}

const TINYPOOL_ENTRY = fileURLToPath(new URL('../../workers/tinypool-entry.js', import.meta.url));

/** A Tinypool whose tasks carry a port; the entry module connects on a thread's first task. */
export function wireTinypool(mods: PeerModules, opts: TinypoolOptions, accept: Accept): Tinypool {
  const Ctor = mods.tinypool;
  if (Ctor === undefined) throw missing('tinypool');
  const TinypoolClass = (Ctor.Tinypool ?? Ctor.default) as typeof Tinypool;
  const target = opts.filename;
  if (typeof target !== 'string' || target.length === 0) throw Errors.invalidArgument('tinypool options need a filename');
  const pool = new TinypoolClass({ ...opts, filename: TINYPOOL_ENTRY });
  const run = pool.run.bind(pool);
  // Each task carries a fresh port in its transferList; a thread already connected closes it
  // (the broker then forgets it). Tinypool gives no way to know which thread a task will get.
  pool.run = ((task: unknown, options: { name?: string; transferList?: unknown[] } = {}) => {
    const { port1, port2 } = new MessageChannel();
    accept(port1);
    const wrapped = { [WIRE_KEY]: { port: port2, filename: target, name: options.name ?? opts.name ?? 'default' }, task };
    return run(wrapped, { ...options, name: 'default', transferList: [port2, ...((options.transferList ?? []) as never[])] } as never);
  }) as typeof pool.run;
  return pool;
}
