/**
 * Tinypool entry: Tinypool refuses unknown messages on `parentPort`, so each task carries a port
 * in its `transferList`. The first one a thread receives becomes its connection; later ones are
 * closed (the broker forgets them). Then the user's module runs the task, and its `connect()`
 * finds the port.
 */
import { pathToFileURL } from 'node:url';
import type { MessagePort } from 'node:worker_threads';

const WIRE_KEY = 'threadbroker:wiring';
const TASK_PORT_KEY = Symbol.for('threadbroker.task-port');

interface Wrapped {
  [WIRE_KEY]: { port: MessagePort; filename: string; name: string };
  task: unknown;
}

const modules = new Map<string, Promise<Record<string, unknown>>>();

export default async function run(wrapped: Wrapped): Promise<unknown> {
  const wiring = wrapped[WIRE_KEY];
  const g = globalThis as Record<symbol, unknown>;
  if (g[TASK_PORT_KEY] === undefined) g[TASK_PORT_KEY] = wiring.port;
  else wiring.port.close();
  // Fix: `new URL(path, 'file://')` resolved a relative filename against the file-system root
  // ('worker.mjs' -> file:///worker.mjs); Tinypool itself resolves it against the working
  // directory, as pathToFileURL does.
  const url = wiring.filename.startsWith('file:') ? wiring.filename : pathToFileURL(wiring.filename).href;
  let mod = modules.get(url);
  if (mod === undefined) {
    mod = import(url) as Promise<Record<string, unknown>>;
    modules.set(url, mod);
  }
  const m = await mod;
  let fn = m[wiring.name];
  // An ESM module's default export may itself be a module namespace (CommonJS interop).
  if (typeof fn !== 'function' && wiring.name === 'default') fn = (m.default as Record<string, unknown> | undefined)?.default;
  if (typeof fn !== 'function') throw new TypeError(`${wiring.filename} exports no function named ${wiring.name}`);
  return (fn as (t: unknown) => unknown)(wrapped.task);
}
