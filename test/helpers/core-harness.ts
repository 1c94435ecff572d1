/**
 * The broker-core tests' harness: a bounded poll, an admin connection, a "gate" (an admin
 * transaction holding a row lock) that keeps broker connections busy until the test opens it,
 * and a commander worker driven one command at a time.
 */
import type { Worker } from 'node:worker_threads';
import mysql from 'mysql2/promise';
import pg from 'pg';
import type { Broker } from 'threadbroker';
import type { DriverKind } from '../../src/config/types.js';
import { BROKER_USER, urlOf } from './test-setup.js';

/** The gate's table, per login, so concurrent runs under other logins never share its locks. */
export const GATE = `core_gate_${BROKER_USER}`;
/** The worker fixture the {@link Commander} drives. */
export const COMMANDER = new URL('../fixtures/workers/core-commander.mjs', import.meta.url);

/** Bounded poll on a condition: returns as soon as it holds. */
export async function waitFor(what: string, cond: () => boolean | Promise<boolean>, timeoutMillis = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMillis;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMillis}ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** One admin (superuser) connection running autocommit statements. */
export class Admin {
  readonly kind: DriverKind;
  #pg: pg.Client | undefined;
  #my: mysql.Connection | undefined;

  constructor(kind: DriverKind) {
    this.kind = kind;
  }

  async open(): Promise<this> {
    if (this.kind === 'pg') {
      this.#pg = new pg.Client({ connectionString: urlOf('pg') });
      await this.#pg.connect();
    } else {
      this.#my = await mysql.createConnection(urlOf('mysql'));
    }
    return this;
  }

  async rows(sql: string, params: unknown[] = []): Promise<Record<string, unknown>[]> {
    if (this.#pg) return (await this.#pg.query(sql, params)).rows as Record<string, unknown>[];
    const [rows] = await this.#my!.query(sql, params);
    return rows as Record<string, unknown>[];
  }

  async scalar(sql: string, params: unknown[] = []): Promise<number> {
    const r = await this.rows(sql, params);
    return Number(Object.values(r[0])[0]);
  }

  async close(): Promise<void> {
    await this.#pg?.end();
    await this.#my?.end();
  }
}

/**
 * A row lock held by an admin transaction: broker statements that select the row `for update`
 * block on the server until `open()`.
 */
export class Gate {
  readonly admin: Admin;
  readonly #counter: Admin;
  readonly id: number;
  #held = false;

  constructor(kind: DriverKind, id: number) {
    this.admin = new Admin(kind);
    this.#counter = new Admin(kind);
    this.id = id;
  }

  /** The statement a broker connection runs to block on the gate (returns the row id). */
  get sql(): string {
    return `select id from ${GATE} where id = ${this.id} for update`;
  }

  async init(): Promise<this> {
    await this.admin.open();
    await this.#counter.open();
    return this;
  }

  async hold(): Promise<void> {
    await this.admin.rows(this.admin.kind === 'pg' ? 'begin' : 'start transaction');
    await this.admin.rows(`select id from ${GATE} where id = ${this.id} for update`);
    this.#held = true;
  }

  async open(): Promise<void> {
    if (!this.#held) return;
    this.#held = false;
    await this.admin.rows('commit');
  }

  /** Broker sessions whose statement is on the server, blocked behind this gate. */
  blocked(): Promise<number> {
    const like = `%${GATE} where id = ${this.id} for update%`;
    return this.admin.kind === 'pg'
      ? this.#counter.scalar(`select count(*)::int from pg_stat_activity where usename = $1 and state = 'active' and query like $2`, [BROKER_USER, like])
      : this.#counter.scalar(`select count(*) from information_schema.processlist where user = ? and command = 'Query' and info like ?`, [BROKER_USER, like]);
  }

  async close(): Promise<void> {
    await this.open();
    await this.admin.close();
    await this.#counter.close();
  }
}

/** A worker wired with broker.worker that sends one query per command. */
export class Commander {
  readonly worker: Worker;
  readonly #replies = new Map<string, { resolve: (v: { ok?: unknown[]; error?: Record<string, unknown> }) => void }>();
  readonly #sent = new Map<string, () => void>();
  readonly ready: Promise<void>;

  constructor(broker: Broker) {
    this.worker = broker.worker(COMMANDER);
    this.ready = new Promise((resolve, reject) => {
      this.worker.once('error', reject);
      this.worker.on('message', (m: { ready?: boolean; tag?: string; sent?: boolean; ok?: unknown[]; error?: Record<string, unknown> }) => {
        if (m.ready) resolve();
        else if (m.sent) this.#sent.get(m.tag!)?.();
        else this.#replies.get(m.tag!)?.resolve(m);
      });
    });
  }

  /** Sends a query; `sent` resolves once the request left the worker, `reply` with its answer. */
  query(tag: string, sql: string, params?: unknown[]): { sent: Promise<void>; reply: Promise<{ ok?: unknown[]; error?: Record<string, unknown> }> } {
    const sent = new Promise<void>((resolve) => this.#sent.set(tag, resolve));
    const reply = new Promise<{ ok?: unknown[]; error?: Record<string, unknown> }>((resolve) => this.#replies.set(tag, { resolve }));
    this.worker.postMessage({ op: 'query', tag, sql, params });
    return { sent, reply };
  }

  async exit(): Promise<void> {
    const gone = new Promise((r) => this.worker.once('exit', r));
    this.worker.postMessage({ op: 'exit' });
    await gone;
  }
}
