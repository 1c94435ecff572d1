/**
 * A monitor connection (admin user) that samples the broker's server-side session count while a
 * test runs; the maximum seen is the cap oracle of RELIABILITY.md.
 */
import mysql from 'mysql2/promise';
import pg from 'pg';
import type { DriverKind } from '../../src/config/types.js';
import { serverCountSql, urlOf } from './test-setup.js';

/** Samples until stopped; `max` is the largest count seen. */
export class ConnectionMonitor {
  max = 0;
  samples = 0;
  readonly #kind: DriverKind;
  #stop = false;
  #loop: Promise<void> | undefined;
  #count: (() => Promise<number>) | undefined;
  #close: (() => Promise<void>) | undefined;

  constructor(kind: DriverKind) {
    this.#kind = kind;
  }

  /** The current count, once. */
  async count(): Promise<number> {
    await this.#open();
    return this.#count!();
  }

  async #open(): Promise<void> {
    if (this.#count !== undefined) return;
    const sql = serverCountSql(this.#kind);
    if (this.#kind === 'pg') {
      const c = new pg.Client({ connectionString: urlOf('pg') });
      await c.connect();
      this.#count = async () => Number((await c.query(sql)).rows[0].n);
      this.#close = () => c.end();
    } else {
      const c = await mysql.createConnection(urlOf('mysql'));
      this.#count = async () => Number(((await c.query(sql)) as unknown as [{ n: number }[]])[0][0].n);
      this.#close = () => c.end();
    }
  }

  /** Starts sampling every `everyMillis` (bounded by `stop()`; at most 10 minutes). */
  async start(everyMillis = 5): Promise<void> {
    await this.#open();
    const until = Date.now() + 600_000;
    this.#loop = (async () => {
      while (!this.#stop && Date.now() < until) {
        const n = await this.#count!();
        this.samples++;
        if (n > this.max) this.max = n;
        await new Promise((r) => setTimeout(r, everyMillis));
      }
    })();
  }

  /** Stops sampling and closes the monitor connection. */
  async stop(): Promise<void> {
    this.#stop = true;
    await this.#loop;
    await this.#close?.();
  }
}
