/**
 * Shared pieces of the reliability suite (RELIABILITY.md): the canary password every config
 * carries, configs at test scale (lease ticks of 50 ms), the cap sampler that survives server
 * restarts, the load workers, the end-state oracle and a watch on unhandled errors.
 */
import type { Worker } from 'node:worker_threads';
import type { Broker } from 'threadbroker';
import type { DriverKind } from '../../src/config/types.js';
import type { OpOutcomes } from './ledger.js';
import { Admin, sleep, waitFor } from './server-admin.js';
import { BROKER_USER, brokerUrlOf } from './test-setup.js';

/**
 * The canary password (RELIABILITY.md S5): PostgreSQL configs carry it in their URL (trust
 * authentication ignores it, the config still holds it); MariaDB logs in with it as
 * {@link CANARY_USER}. It must never appear in any output the suite captures.
 */
export const CANARY = 'tbCanary-5e1f0c37-ReliabilityOnly';
/** The MariaDB login whose password is the canary. */
export const CANARY_USER = `${BROKER_USER}_cny`.slice(0, 32);

/** The broker URL of a kind, through a proxy port when given; pg URLs carry the canary password. */
export function relUrl(kind: DriverKind, proxyPort?: number): string {
  const u = new URL(brokerUrlOf(kind));
  if (kind === 'pg') u.password = CANARY;
  if (proxyPort !== undefined) {
    u.hostname = '127.0.0.1';
    u.port = String(proxyPort);
  }
  return u.href;
}

/** The URL of the MariaDB canary login (its password is the canary). */
export function canaryUrl(proxyPort?: number): string {
  const u = new URL(brokerUrlOf('mysql'));
  u.username = CANARY_USER;
  u.password = CANARY;
  if (proxyPort !== undefined) u.port = String(proxyPort);
  return u.href;
}

/** A one-database (`db`) config at test scale. */
export function relConfig(kind: DriverKind, db: Record<string, unknown> = {}, reservations: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    databases: { db: { driver: kind, url: relUrl(kind), max: 8, ...db } },
    reservations: { housekeepingMillis: 50, ...reservations },
  };
}

/** Samples the login's server-side sessions every few ms; keeps going through restarts. */
export class CapSampler {
  max = 0;
  samples = 0;
  failures = 0;
  readonly #admin: Admin;
  readonly #user: string;
  #stop = false;
  #loop: Promise<void> | undefined;

  constructor(kind: DriverKind, user = BROKER_USER) {
    this.#admin = new Admin(kind);
    this.#user = user;
  }

  start(everyMillis = 5, boundMillis = 900_000): void {
    const until = Date.now() + boundMillis;
    this.#loop = (async () => {
      while (!this.#stop && Date.now() < until) {
        try {
          const n = await this.#admin.sessions(this.#user);
          this.samples++;
          if (n > this.max) this.max = n;
        } catch {
          this.failures++;
          await sleep(50);
        }
        await sleep(everyMillis);
      }
    })();
  }

  async stop(): Promise<void> {
    this.#stop = true;
    await this.#loop;
    await this.#admin.close();
  }
}

/** What a load worker reports (test/fixtures/workers/rel-load-worker.mjs). */
export interface LoadSummary {
  id: number;
  ran: number;
  millis: number;
  outcomes: OpOutcomes;
  latencies: number[];
  errors: Record<string, number>;
  violations: number;
  hung: number;
  stillPending: number;
  events: [number, 0 | 1][];
}

const LOAD_WORKER = new URL('../fixtures/workers/rel-load-worker.mjs', import.meta.url);

/** Starts `n` load workers; `done` resolves with every summary (rejects if one dies without one). */
export function startLoad(broker: Broker, n: number, data: Record<string, unknown>): { workers: Worker[]; done: Promise<LoadSummary[]>; stop: () => void } {
  const workers = Array.from({ length: n }, (_, id) => broker.worker(LOAD_WORKER, { workerData: { ...data, id } }));
  const done = Promise.all(workers.map((w) => new Promise<LoadSummary>((resolve, reject) => {
    let out: LoadSummary | undefined;
    w.once('message', (m: LoadSummary) => (out = m));
    w.once('error', reject);
    w.once('exit', (code) => (out !== undefined ? resolve(out) : reject(new Error(`load worker exited with ${code} and no summary`))));
  })));
  return { workers, done, stop: () => workers.forEach((w) => w.postMessage({ stop: true })) };
}

/** The op mix of RELIABILITY.md L1: 70 % single CRUD statements, 20 % reserved transactions, 10 % reads of 1,000 rows. */
export const L1_MIX = { insert: 0.4, select: 0.15, update: 0.15, transfer: 0.2, read: 0.1 };

/**
 * The end state (RELIABILITY.md "End state"): no idle-in-transaction session of the login, no
 * reservation held, nothing busy or waiting in the pool. Waits (bounded) for it; returns what it saw.
 */
export async function endState(broker: Broker, admin: Admin, millis = 10_000): Promise<{ idleInTx: number; reserved: number; busy: number; waiting: number }> {
  const seen = { idleInTx: -1, reserved: -1, busy: -1, waiting: -1 };
  await waitFor('a clean end state', async () => {
    const s = broker.stats().databases.db;
    seen.reserved = s.reserved;
    seen.busy = s.busy;
    seen.waiting = s.waiting;
    seen.idleInTx = await admin.idleInTransaction();
    return seen.idleInTx === 0 && seen.reserved === 0 && seen.busy === 0 && seen.waiting === 0;
  }, millis, 20).catch(() => undefined);
  return seen;
}

/** Collects `unhandledRejection` / `uncaughtException` while installed. */
export class ErrorWatch {
  readonly seen: string[] = [];
  readonly #on = (e: unknown): void => {
    this.seen.push(e instanceof Error ? `${e.name}: ${e.message}` : String(e));
  };

  constructor() {
    process.on('unhandledRejection', this.#on);
    process.on('uncaughtException', this.#on);
  }

  stop(): string[] {
    process.off('unhandledRejection', this.#on);
    process.off('uncaughtException', this.#on);
    return this.seen;
  }
}

/** Host and port of a kind's real server, for a proxy in front of it. */
export function serverOf(kind: DriverKind): { host: string; port: number } {
  const u = new URL(brokerUrlOf(kind));
  return { host: u.hostname, port: Number(u.port || (kind === 'pg' ? 5432 : 3306)) };
}

/** The code of a rejection, or `OK`. */
export function codeOf(p: Promise<unknown>): Promise<string> {
  return p.then(() => 'OK', (e: { code?: string; message?: string }) => e?.code ?? `NOT_A_BROKER_ERROR: ${String(e?.message ?? e)}`);
}

/** The server session id of a connection, as SQL. */
export function sessionIdSql(kind: DriverKind): string {
  return kind === 'pg' ? 'select pg_backend_pid() as sid' : 'select connection_id() as sid';
}

/** SQL for `n` generated rows of about `width` bytes each. */
export function rowsSql(kind: DriverKind, n: number, width = 10): string {
  return kind === 'pg'
    ? `select g as id, repeat('x', ${width}) as pad from generate_series(1, ${n}) g`
    : `select seq as id, repeat('x', ${width}) as pad from seq_1_to_${n}`;
}

/** SQL that sleeps `seconds` on the server. */
export function sleepSql(kind: DriverKind, seconds: number): string {
  return kind === 'pg' ? `select pg_sleep(${seconds})` : `select sleep(${seconds})`;
}
