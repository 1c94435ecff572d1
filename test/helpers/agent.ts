/**
 * The test's end of an rsv-agent worker (test/fixtures/workers/rsv-agent.mjs): one command, one
 * answer, so interleavings across threads are decided by the test.
 */
import type { MessagePort, ResourceLimits, Worker } from 'node:worker_threads';
import type { Broker } from 'threadbroker';

export const AGENT = new URL('../fixtures/workers/rsv-agent.mjs', import.meta.url);

/** An error an agent reported. */
export interface AgentError extends Error {
  code: string;
  sqlState?: string;
  errno?: number;
}

export class Agent {
  readonly ready: Promise<number>;
  readonly worker: Worker | undefined;
  #next = 1;
  readonly #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  readonly #port: MessagePort | Worker;

  constructor(port: MessagePort | Worker, worker?: Worker) {
    this.#port = port;
    this.worker = worker;
    this.ready = new Promise((resolve) => {
      port.on('message', (m: { ready?: boolean; threadId: number; id: number; ok: boolean; value: unknown; err: { code: string; message: string } }) => {
        if (m.ready) return resolve(m.threadId);
        const p = this.#pending.get(m.id);
        this.#pending.delete(m.id);
        if (m.ok) p?.resolve(m.value);
        else p?.reject(Object.assign(new Error(m.err.message), m.err));
      });
    });
  }

  /** A plain wired worker running the agent (`resourceLimits` for out-of-memory deaths). */
  static spawn(broker: Broker, resourceLimits?: ResourceLimits): Agent {
    const w = broker.worker(AGENT, { workerData: { agent: true }, resourceLimits });
    w.on('error', () => undefined); // uncaught throws and out-of-memory deaths report here
    return new Agent(w, w);
  }

  call<T = unknown>(op: string, args: Record<string, unknown> = {}): Promise<T> {
    const id = this.#next++;
    return new Promise<T>((resolve, reject) => {
      this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.#port.postMessage({ id, op, ...args });
    });
  }

  /** The error code of a command, or OK. */
  code(op: string, args: Record<string, unknown> = {}): Promise<string> {
    return this.call(op, args).then(() => 'OK', (e: AgentError) => e.code);
  }
}
