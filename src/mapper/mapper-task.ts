/**
 * The generic mapper worker's protocol: a piscina (or tinypool) task `{ class, op, args }` runs
 * one model operation in a wired worker, so an application can use the mapper without writing
 * worker code. The shipped entry is `workers/mapper-worker.js` ({@link MAPPER_WORKER_URL}).
 * @module
 */
import type { Db } from '../client/db.js';
import { BrokerError, FIELD_KEYS, type ErrorCode } from '../errors.js';
import { isPlainObject } from './values.js';

/**
 * The operations a mapper task may name.
 *
 * ```ts
 * const op: MapperOp = 'find';
 * ```
 */
export type MapperOp = 'get' | 'find' | 'count' | 'insert' | 'update' | 'save' | 'delete';

/**
 * One task for the mapper worker.
 *
 * ```ts
 * const u = await pool.run({ class: 'User', op: 'insert', args: [{ name: 'Ada' }] });
 * await pool.run({ class: 'User', op: 'update', args: [u], token }); // inside a reservation
 * ```
 */
export interface MapperTask {
  /** The class name in the config. */
  class: string;
  /** The model operation. */
  op: MapperOp;
  /** Its arguments, as for the model method (`get`: `[key]`, `find`: `[where, opts]` …). */
  args?: unknown[];
  /** A reservation token: run inside that reservation (`model.in(await db.attach(token))`). */
  token?: string;
}

/**
 * Where the mapper worker entry is (a `file:` URL of `dist/workers/mapper-worker.js`).
 *
 * ```ts
 * const pool = broker.piscina({ filename: MAPPER_WORKER_URL, maxThreads: 4 });
 * ```
 */
export const MAPPER_WORKER_URL: string = new URL('../../workers/mapper-worker.js', import.meta.url).href;

const OPS: ReadonlyMap<string, number> = new Map<MapperOp, number>([
  ['get', 1], ['find', 2], ['count', 1], ['insert', 1], ['update', 1], ['save', 1], ['delete', 1],
]);

function invalid(message: string): BrokerError {
  return new BrokerError('INVALID_ARGUMENT', `mapper task: ${message}`);
}

/**
 * An error fit for a task result: a structured clone keeps an Error's message and `cause` but
 * drops its class and `code`, so the code and the server fields travel in `cause`.
 */
function toTaskError(err: unknown): unknown {
  if (!(err instanceof BrokerError)) return err;
  const cause: Record<string, unknown> = { code: err.code };
  for (const k of FIELD_KEYS) if (err[k] !== undefined) cause[k] = err[k];
  const out = new Error(`${err.code}: ${err.message}`, { cause });
  out.stack = err.stack;
  return out;
}

/**
 * Runs one mapper task with a client (or the promise of one). The worker entry is this plus `connect()`.
 *
 * ```ts
 * export default (task: unknown) => serveMapperTask(connect(), task);
 * ```
 */
export async function serveMapperTask(client: Db | Promise<Db>, task: unknown): Promise<unknown> {
  try {
    const db = await client;
    if (!isPlainObject(task)) throw invalid('a task must be an object { class, op, args }');
    const { class: cls, op, args = [], token } = task as Partial<MapperTask>;
    if (typeof op !== 'string' || !OPS.has(op)) throw invalid(`op must be one of ${[...OPS.keys()].join(', ')}`);
    if (!Array.isArray(args) || args.length > (OPS.get(op) as number)) throw invalid(`args of ${op} must be an array of at most ${OPS.get(op)} values`);
    if (token !== undefined && typeof token !== 'string') throw invalid('token must be a string');
    let model = db.model(cls as string);
    if (token !== undefined) model = model.in(await db.attach(token));
    const fn = model[op as MapperOp] as (...a: unknown[]) => Promise<unknown>;
    return await fn.apply(model, args);
  } catch (err) {
    throw toTaskError(err);
  }
}

/**
 * The `BrokerError` behind a failed mapper task (its `code` restored from the error's `cause`),
 * or `err` itself when it did not come from the mapper.
 *
 * ```ts
 * try { await pool.run(task) } catch (err) {
 *   const e = fromTaskError(err);
 *   if (e instanceof BrokerError && e.code === 'VERSION_CONFLICT') reload();
 * }
 * ```
 */
export function fromTaskError(err: unknown): unknown {
  const cause = (err as { cause?: unknown } | null)?.cause as Record<string, unknown> | undefined;
  if (!(err instanceof Error) || cause === null || typeof cause !== 'object' || typeof cause['code'] !== 'string') return err;
  const code = cause['code'] as ErrorCode;
  const prefix = `${code}: `;
  const message = err.message.startsWith(prefix) ? err.message.slice(prefix.length) : err.message;
  const fields: Record<string, unknown> = {};
  for (const k of FIELD_KEYS) if (cause[k] !== undefined) fields[k] = cause[k];
  const out = new BrokerError(code, message, fields as never);
  if (err.stack) out.stack = err.stack;
  return out;
}

/**
 * Runs a mapper task on a pool of mapper workers and rethrows failures as `BrokerError`s.
 *
 * ```ts
 * const pool = broker.piscina({ filename: MAPPER_WORKER_URL });
 * const u = await runMapperTask<User>(pool, { class: 'User', op: 'get', args: [1] });
 * ```
 */
export async function runMapperTask<R = unknown>(pool: { run(task: unknown): Promise<unknown> }, task: MapperTask): Promise<R> {
  try {
    return (await pool.run(task)) as R;
  } catch (err) {
    throw fromTaskError(err);
  }
}
