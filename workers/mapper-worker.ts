/**
 * The generic mapper worker: a piscina (or tinypool) task entry that runs one model operation per
 * task, `{ class, op, args, token? }`, on this thread's broker connection. No logic of its own:
 * see `serveMapperTask` in src/mapper/mapper-task.ts.
 *
 * ```ts
 * import { MAPPER_WORKER_URL, runMapperTask } from 'threadbroker/worker';
 * const pool = broker.piscina({ filename: MAPPER_WORKER_URL });
 * const u = await runMapperTask(pool, { class: 'User', op: 'insert', args: [{ name: 'Ada' }] });
 * ```
 */
import { connect, serveMapperTask } from '../src/worker.js';

/** Runs one mapper task; failures carry their `code` in `cause` (see `fromTaskError`). */
export default async function mapperTask(task: unknown): Promise<unknown> {
  return serveMapperTask(connect(), task);
}
