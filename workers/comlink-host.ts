/**
 * Host of `broker.spawn(module)`: imports the module and exposes its exports over comlink on
 * `parentPort`. The module's own `connect()` finds the broker through `workerData`.
 */
import { parentPort, workerData } from 'node:worker_threads';
import * as Comlink from 'comlink';
import nodeEndpoint from 'comlink/dist/esm/node-adapter.mjs';

const wiring = (workerData as Record<string, { module: string }>)['threadbroker:wiring'];
const mod = (await import(wiring.module)) as Record<string, unknown>;
Comlink.expose(mod, nodeEndpoint(parentPort!));
