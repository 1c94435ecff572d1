/**
 * threadbroker's thread-side entry (`threadbroker/worker`): `connect()` and the client types.
 * Works in any wired thread, and in the main thread once a broker was started there.
 *
 * ```ts
 * import { connect } from 'threadbroker/worker';
 * export default async function task({ id }: { id: number }) {
 *   const db = await connect();
 *   const { rows } = await db.query('main', 'select * from users where id = $1', [id]);
 *   return rows[0];
 * }
 * ```
 * @module
 */
import { getEnvironmentData, isMainThread, MessageChannel, parentPort, workerData, type MessagePort } from 'node:worker_threads';
import { Db } from './client/db.js';
import { PortClient, type ClientEndpoint } from './client/port-client.js';
import { Errors } from './errors.js';
import { ENV_KEY, WIRE_KEY } from './transport/protocol.js';

export { Db } from './client/db.js';
export type { DatabaseHandle, ReserveOptions, TransactionOptions } from './client/db.js';
export { Reservation } from './client/reservation.js';
export type { BeginOptions } from './client/reservation.js';
export type { QueryResult, FieldInfo } from './client/result.js';
export { BrokerError } from './errors.js';
export type { ErrorCode, DatabaseErrorFields } from './errors.js';
export { Model } from './mapper/model.js';
export type { Where, Condition } from './mapper/where.js';
export type { FindOptions, OrderBy } from './mapper/sql-builder.js';
export type { KeyValue } from './mapper/values.js';
export type { ChangeNotice, ChangeListener } from './mapper/change-notices.js';
export { generateTypes, introspect, TS_TYPES } from './mapper/codegen.js';
export type { ClassSection, IntrospectOptions, Introspection } from './mapper/codegen.js';
export { readCatalog, columnTypeOf } from './mapper/catalog.js';
export type { Catalog, CatalogTable, CatalogColumn, CatalogSource } from './mapper/catalog.js';
export { MAPPER_WORKER_URL, serveMapperTask, runMapperTask, fromTaskError } from './mapper/mapper-task.js';
export type { MapperTask, MapperOp } from './mapper/mapper-task.js';

const LOCAL_KEY = Symbol.for('threadbroker.local-connect');
/** Where the tinypool entry leaves the port it received with a task. */
const TASK_PORT_KEY = Symbol.for('threadbroker.task-port');

let shared: Promise<Db> | undefined;

/**
 * Connects this thread to the broker and returns the client. Without an argument it finds the
 * thread's wiring (piscina, tinypool, `broker.worker`, `broker.spawn`, or the main thread's
 * broker) and returns the same client on every call. With a port from `broker.port()`, it
 * connects through that port.
 * @throws BrokerError `NOT_WIRED` when no broker can be reached (bounded wait)
 */
export function connect(port?: MessagePort): Promise<Db> {
  if (port !== undefined) return PortClient.open(port as unknown as ClientEndpoint).then((c) => new Db(c));
  if (shared === undefined) {
    shared = open();
    // A failed attempt is not cached, so a later call may succeed (e.g. once the broker started).
    shared.catch(() => {
      shared = undefined;
    });
  }
  return shared;
}

async function open(): Promise<Db> {
  if (isMainThread) {
    const local = (globalThis as Record<symbol, unknown>)[LOCAL_KEY];
    if (typeof local === 'function') return local() as Db;
    throw Errors.notWired('no broker was started in this process: call Broker.start() in the main thread first');
  }
  const wiring = (workerData as Record<string, unknown> | null | undefined)?.[WIRE_KEY] as { port?: MessagePort } | undefined;
  if (wiring?.port !== undefined) return new Db(await PortClient.open(wiring.port as unknown as ClientEndpoint));
  const taskPort = (globalThis as Record<symbol, unknown>)[TASK_PORT_KEY] as MessagePort | undefined;
  if (taskPort !== undefined) return new Db(await PortClient.open(taskPort as unknown as ClientEndpoint));
  const brokerId = getEnvironmentData(ENV_KEY);
  if (typeof brokerId === 'string' && parentPort !== null) {
    // piscina re-emits messages from parentPort as the pool's 'message' event; the broker listens there.
    const { port1, port2 } = new MessageChannel();
    parentPort.postMessage({ [WIRE_KEY]: 'hello', brokerId, port: port2 }, [port2]);
    return new Db(await PortClient.open(port1 as unknown as ClientEndpoint));
  }
  throw Errors.notWired('this thread is not wired to a broker: create it with broker.piscina/tinypool/worker/spawn, or pass connect(broker.port())');
}
