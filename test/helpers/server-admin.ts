/**
 * The reliability suite's view of the real servers, as the admin user: statements, session
 * kills, the server-side connection cap of the broker login (the cap oracle's backstop),
 * idle-in-transaction counts, the PostgreSQL log (cap refusals, backstop firings), and server
 * restarts/stops (RELIABILITY.md F4, F5). Every wait is bounded.
 */
import { execFile } from 'node:child_process';
import { open } from 'node:fs/promises';
import { promisify } from 'node:util';
import mysql from 'mysql2/promise';
import pg from 'pg';
import type { DriverKind } from '../../src/config/types.js';
import { BROKER_USER, urlOf } from './test-setup.js';

const run = promisify(execFile);

/** Polls `cond` until it holds; throws after `millis` (a bound, not a sleep). */
export async function waitFor(what: string, cond: () => boolean | Promise<boolean>, millis = 10_000, every = 5): Promise<void> {
  const end = Date.now() + millis;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out after ${millis}ms waiting for ${what}`);
    await sleep(every);
  }
}

export function sleep(millis: number): Promise<void> {
  return new Promise((r) => setTimeout(r, millis));
}

/** One admin connection that reconnects after a server restart. */
export class Admin {
  readonly kind: DriverKind;
  #pg: pg.Client | undefined;
  #my: mysql.Connection | undefined;

  constructor(kind: DriverKind) {
    this.kind = kind;
  }

  async #open(): Promise<void> {
    if (this.kind === 'pg') {
      if (this.#pg !== undefined) return;
      const c = new pg.Client({ connectionString: urlOf('pg') });
      c.on('error', () => {
        if (this.#pg === c) this.#pg = undefined;
      });
      await c.connect();
      this.#pg = c;
    } else {
      if (this.#my !== undefined) return;
      const c = await mysql.createConnection(urlOf('mysql'));
      c.on('error', () => {
        if (this.#my === c) this.#my = undefined;
      });
      this.#my = c;
    }
  }

  /** Rows of one statement (autocommit). A lost admin connection is reopened once. */
  async rows(sql: string, params: unknown[] = []): Promise<Record<string, unknown>[]> {
    for (let attempt = 0; ; attempt++) {
      try {
        await this.#open();
        if (this.kind === 'pg') return (await this.#pg!.query(sql, params)).rows as Record<string, unknown>[];
        const [rows] = await this.#my!.query(sql, params);
        return rows as Record<string, unknown>[];
      } catch (err) {
        const lost = /terminat|closed|ECONNRESET|ECONNREFUSED|EPIPE|gone away|Connection lost|shutdown|not queryable/i.test(String((err as Error).message));
        if (!lost || attempt > 0) throw err;
        this.#drop();
      }
    }
  }

  async scalar(sql: string, params: unknown[] = []): Promise<number> {
    const r = await this.rows(sql, params);
    return Number(Object.values(r[0] ?? { n: NaN })[0]);
  }

  async exec(...statements: string[]): Promise<void> {
    for (const s of statements) await this.rows(s);
  }

  #drop(): void {
    this.#pg?.end().catch(() => undefined);
    this.#my?.destroy();
    this.#pg = undefined;
    this.#my = undefined;
  }

  async close(): Promise<void> {
    await this.#pg?.end().catch(() => undefined);
    await this.#my?.end().catch(() => undefined);
    this.#pg = undefined;
    this.#my = undefined;
  }

  // ---- the broker login, seen from the server ----

  /** Sessions of the broker login (`user` overrides). */
  sessions(user = BROKER_USER): Promise<number> {
    return this.kind === 'pg'
      ? this.scalar(`select count(*)::int as n from pg_stat_activity where usename = $1`, [user])
      : this.scalar(`select count(*) as n from information_schema.processlist where user = ?`, [user]);
  }

  /** Sessions of the login with a transaction open and no statement running. */
  idleInTransaction(user = BROKER_USER): Promise<number> {
    return this.kind === 'pg'
      ? this.scalar(`select count(*)::int from pg_stat_activity where usename = $1 and state like 'idle in transaction%'`, [user])
      : this.scalar(`select count(*) from information_schema.innodb_trx t join information_schema.processlist p on p.id = t.trx_mysql_thread_id where p.user = ? and p.command = 'Sleep'`, [user]);
  }

  /** Server session ids of the login; `like` picks those running a matching statement, `idle` those idle. */
  async sessionIds(opts: { like?: string; idle?: boolean; user?: string } = {}): Promise<number[]> {
    const user = opts.user ?? BROKER_USER;
    if (this.kind === 'pg') {
      const where = [`usename = $1`, opts.idle ? `state = 'idle'` : 'true', opts.like ? `query like $2` : 'true'].join(' and ');
      const rows = await this.rows(`select pid as id from pg_stat_activity where ${where}`, opts.like ? [user, opts.like] : [user]);
      return rows.map((r) => Number(r.id));
    }
    const where = [`user = ?`, opts.idle ? `command = 'Sleep'` : '1', opts.like ? `info like ?` : '1'].join(' and ');
    const rows = await this.rows(`select id from information_schema.processlist where ${where}`, opts.like ? [user, opts.like] : [user]);
    return rows.map((r) => Number(r.id));
  }

  /** Kills sessions on the server (`pg_terminate_backend`, `KILL CONNECTION`). */
  async kill(ids: number[]): Promise<void> {
    for (const id of ids) {
      if (this.kind === 'pg') await this.rows('select pg_terminate_backend($1)', [id]);
      else await this.rows(`kill connection ${Number(id)}`).catch(() => undefined);
    }
  }

  // ---- the server-side cap (RELIABILITY.md: "Any overshoot then becomes a hard error") ----

  /** Caps the login's connections on the server (`ALTER ROLE … CONNECTION LIMIT`, `MAX_USER_CONNECTIONS`); -1 / 0 lifts it. */
  async capLogin(n: number, user = BROKER_USER): Promise<void> {
    if (!/^[a-z_][a-z0-9_]*$/.test(user)) throw new Error('plain login names only');
    if (this.kind === 'pg') {
      await this.rows(`alter role ${user} connection limit ${Math.trunc(n)}`);
      return;
    }
    for (const host of ['%', 'localhost', '127.0.0.1']) {
      await this.rows(`grant usage on *.* to '${user}'@'${host}' with max_user_connections ${Math.max(0, Math.trunc(n))}`);
    }
  }
}

// ---- the PostgreSQL log ----

const PG_LOG = process.env.PG_LOG ?? '/var/log/postgresql/postgresql-15-main.log';

/** A mark in the PostgreSQL log; `lines()` gives what was written after it (empty when the log cannot be read). */
export class PgLog {
  readonly #from: number;
  readonly readable: boolean;

  private constructor(from: number, readable: boolean) {
    this.#from = from;
    this.readable = readable;
  }

  static async mark(): Promise<PgLog> {
    try {
      const fh = await open(PG_LOG, 'r');
      const { size } = await fh.stat();
      await fh.close();
      return new PgLog(size, true);
    } catch {
      return new PgLog(0, false);
    }
  }

  async lines(): Promise<string[]> {
    if (!this.readable) return [];
    const fh = await open(PG_LOG, 'r');
    try {
      const { size } = await fh.stat();
      if (size <= this.#from) return [];
      const buf = Buffer.alloc(Math.min(size - this.#from, 64 * 1024 * 1024));
      await fh.read(buf, 0, buf.length, this.#from);
      return buf.toString('utf8').split('\n').filter(Boolean);
    } finally {
      await fh.close();
    }
  }

  /** Lines of the broker login matching `re` since the mark. */
  async count(re: RegExp, user = BROKER_USER): Promise<number> {
    return (await this.lines()).filter((l) => l.includes(`${user}@`) && re.test(l)).length;
  }
}

/** 53300 "too many connections for role" in the log since the mark. */
export const CAP_REFUSED = /too many connections for role/;
/** 25P03 idle_in_transaction_session_timeout firing. */
export const BACKSTOP_FIRED = /idle-in-transaction timeout|idle_in_transaction_session_timeout/;

// ---- servers: restart, stop, start (RELIABILITY.md F4, F5) ----

const PG_VERSION = process.env.PG_CLUSTER_VERSION ?? '15';

/** True when the server answers a fresh admin connection. */
export async function serverUp(kind: DriverKind): Promise<boolean> {
  const a = new Admin(kind);
  try {
    await a.rows('select 1');
    return true;
  } catch {
    return false;
  } finally {
    await a.close().catch(() => undefined);
  }
}

/** Waits (bounded) until the server answers. */
export async function waitServerUp(kind: DriverKind, millis = 120_000): Promise<void> {
  await waitFor(`${kind} to answer`, () => serverUp(kind), millis, 100);
}

/** `pg_ctlcluster … restart -m <mode>`; MariaDB: `mysqladmin shutdown` then start. Resolves once it answers again. */
export async function restartServer(kind: DriverKind, mode: 'fast' | 'immediate' = 'fast'): Promise<void> {
  if (kind === 'pg') {
    await run('pg_ctlcluster', ['--skip-systemctl-redirect', PG_VERSION, 'main', 'restart', '-m', mode], { timeout: 120_000 });
  } else {
    await stopServer('mysql');
    await startServer('mysql');
  }
  await waitServerUp(kind);
}

/** Stops the server (pg: `-m fast`). Resolves once it refuses connections. */
export async function stopServer(kind: DriverKind): Promise<void> {
  if (kind === 'pg') {
    await run('pg_ctlcluster', ['--skip-systemctl-redirect', PG_VERSION, 'main', 'stop', '-m', 'fast'], { timeout: 120_000 });
  } else {
    await run('mysqladmin', ['-uroot', 'shutdown'], { timeout: 120_000 });
  }
  await waitFor(`${kind} to stop`, async () => !(await serverUp(kind)), 120_000, 100);
}

/** Starts the server if it is down; resolves once it answers. */
export async function startServer(kind: DriverKind): Promise<void> {
  if (await serverUp(kind)) return;
  if (kind === 'pg') {
    await run('pg_ctlcluster', ['--skip-systemctl-redirect', PG_VERSION, 'main', 'start'], { timeout: 120_000 });
  } else {
    await run('start-stop-daemon', ['--start', '--oknodo', '--background', '--exec', '/usr/sbin/mariadbd'], { timeout: 120_000 });
  }
  await waitServerUp(kind);
}
