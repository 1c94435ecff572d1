/**
 * Broker core, errors crossing threads (DESIGN.md "Errors", RELIABILITY.md S5): a database error
 * raised by a worker's statement arrives in the worker as a BrokerError with its code, the
 * server's sqlState / errno and constraint, and a stack that names the worker's own file; it
 * carries only whitelisted fields, never the config or the password (a canary).
 */
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import * as Comlink from 'comlink';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Broker, BrokerError } from 'threadbroker';
import { spawnEndpoint } from '../../dist/src/wiring/wiring.js';
import type { DriverKind } from '../../src/config/types.js';
import { BROKER_USER, KINDS, brokerUrlOf, configFor, ph, urlOf } from '../helpers/test-setup.js';

const FIXTURE = new URL('../fixtures/workers/core-errors.mjs', import.meta.url);
const API = new URL('../fixtures/workers/core-api.mjs', import.meta.url);
const COMLINK_HOST = fileURLToPath(new URL('../../dist/workers/comlink-host.js', import.meta.url));

interface Api {
  query(sql: string, params?: unknown[]): Promise<Record<string, unknown>[]>;
  crash(): Promise<void>;
}

/** Settles `p` or says it hangs: every wait is bounded (DESIGN.md invariant 5). */
function bounded<T>(p: Promise<T>, millis: number): Promise<{ value?: T; error?: unknown; hang?: true }> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.then((value) => ({ value }), (error: unknown) => ({ error })),
    new Promise<{ hang: true }>((r) => (timer = setTimeout(() => r({ hang: true }), millis))),
  ]).finally(() => clearTimeout(timer));
}
const CANARY = 'canary-Zq7xW3pK9';
/** A login with a password, for MySQL (PostgreSQL trusts local logins and ignores the password). */
const SECRET_USER = `${BROKER_USER}_pw`;
// Per-login table (and so constraint) names: a concurrent run under another login must not collide.
const UNIQ = `core_uniq_${BROKER_USER}`;
const PARENT = `core_parent_${BROKER_USER}`;
const CHILD = `core_child_${BROKER_USER}`;
const FIELD_KEYS = ['code', 'sqlState', 'errno', 'driverCode', 'detail', 'hint', 'constraint', 'table', 'column', 'schema', 'position', 'database', 'xid'];

interface Described {
  isBrokerError: boolean;
  isError: boolean;
  name: string;
  code: string;
  message: string;
  sqlState?: string;
  errno?: number;
  constraint?: string;
  detail?: string;
  table?: string;
  stack: string;
  keys: string[];
  json: string;
  inspected: string;
}

async function adminRun(kind: DriverKind, statements: string[]): Promise<void> {
  if (kind === 'pg') {
    const c = new pg.Client({ connectionString: urlOf('pg') });
    await c.connect();
    try {
      for (const s of statements) await c.query(s);
    } finally {
      await c.end();
    }
  } else {
    const c = await mysql.createConnection(urlOf('mysql'));
    try {
      for (const s of statements) await c.query(s);
    } finally {
      await c.end();
    }
  }
}

/** A broker URL whose password is the canary. */
function secretUrl(kind: DriverKind): string {
  const u = new URL(brokerUrlOf(kind));
  if (kind === 'mysql') u.username = SECRET_USER;
  u.password = CANARY;
  return u.href;
}

function runFixture(broker: Broker, sql: string, params: unknown[]): Promise<{ error: Described | null }> {
  const w: Worker = broker.worker(FIXTURE, { workerData: { sql, params } });
  return new Promise((resolve, reject) => {
    w.once('message', resolve);
    w.once('error', reject);
  });
}

for (const kind of KINDS) {
  describe(`${kind}: errors crossing threads`, () => {
    let broker: Broker;
    const p = (i: number): string => ph(kind, i);

    beforeAll(async () => {
      if (kind === 'pg') {
        await adminRun(kind, [
          `drop table if exists ${CHILD}, ${PARENT}, ${UNIQ}`,
          `create table ${UNIQ} (id int primary key, email text not null, constraint ${UNIQ}_email unique (email), constraint ${UNIQ}_id_positive check (id > 0))`,
          `create table ${PARENT} (id int primary key)`,
          `create table ${CHILD} (id int primary key, pid int not null, constraint ${CHILD}_fk foreign key (pid) references ${PARENT} (id))`,
          `grant all on ${UNIQ}, ${PARENT}, ${CHILD} to ${BROKER_USER}`,
          `insert into ${UNIQ} values (1, 'ada@example.org')`,
        ]);
      } else {
        await adminRun(kind, [
          `drop table if exists ${CHILD}, ${PARENT}, ${UNIQ}`,
          `create table ${UNIQ} (id int primary key, email varchar(100) not null, constraint ${UNIQ}_email unique (email), constraint ${UNIQ}_id_positive check (id > 0)) engine=innodb`,
          `create table ${PARENT} (id int primary key) engine=innodb`,
          `create table ${CHILD} (id int primary key, pid int not null, constraint ${CHILD}_fk foreign key (pid) references ${PARENT} (id)) engine=innodb`,
          `insert into ${UNIQ} values (1, 'ada@example.org')`,
          ...['%', 'localhost', '127.0.0.1'].flatMap((h) => [
            `create or replace user '${SECRET_USER}'@'${h}' identified by '${CANARY}'`,
            `grant all on test.* to '${SECRET_USER}'@'${h}'`,
          ]),
        ]);
      }
      broker = await Broker.start(configFor(kind, { url: secretUrl(kind), max: 2 }));
      // The canary really is the password the broker logs in with.
      await expect(broker.connect().query('db', 'select 1 as one')).resolves.toMatchObject({ rowCount: 1 });
    });

    afterAll(async () => {
      await broker.close();
      await adminRun(kind, [`drop table if exists ${CHILD}, ${PARENT}, ${UNIQ}`]);
      if (kind === 'mysql') await adminRun(kind, ['%', 'localhost', '127.0.0.1'].map((h) => `drop user if exists '${SECRET_USER}'@'${h}'`));
    });

    function expectClean(e: Described): void {
      expect(e.isBrokerError).toBe(true);
      expect(e.isError).toBe(true);
      expect(e.name).toBe('BrokerError');
      // The stack is the caller's: it names the worker's file and function, not the port's handler.
      expect(e.stack).toMatch(/^BrokerError: /);
      expect(e.stack).toContain('core-errors.mjs');
      expect(e.stack).toContain('violateUnique');
      // Whitelisted fields only; no secret anywhere.
      for (const k of e.keys) expect(FIELD_KEYS).toContain(k);
      for (const text of [e.message, e.stack, e.json, e.inspected]) {
        expect(text).not.toContain(CANARY);
        expect(text).not.toMatch(/password|connectionString|127\.0\.0\.1/i);
      }
    }

    it('a unique violation arrives as DATABASE_ERROR with sqlState/errno and the constraint', async () => {
      const { error } = await runFixture(broker, `insert into ${UNIQ} (id, email) values (${p(1)}, ${p(2)})`, [2, 'ada@example.org']);
      expect(error).not.toBeNull();
      const e = error!;
      expectClean(e);
      expect(e.code).toBe('DATABASE_ERROR');
      expect(e.constraint).toBe(`${UNIQ}_email`);
      if (kind === 'pg') {
        expect(e.sqlState).toBe('23505');
        expect(e.detail).toBe('Key (email)=(ada@example.org) already exists.');
        expect(e.table).toBe(`${UNIQ}`);
      } else {
        expect(e.sqlState).toBe('23000');
        expect(e.errno).toBe(1062);
      }
    });

    it('a primary-key violation names its key', async () => {
      const { error } = await runFixture(broker, `insert into ${UNIQ} (id, email) values (${p(1)}, ${p(2)})`, [1, 'other@example.org']);
      const e = error!;
      expectClean(e);
      expect(e.code).toBe('DATABASE_ERROR');
      expect(e.constraint).toBe(kind === 'pg' ? `${UNIQ}_pkey` : 'PRIMARY');
      expect(kind === 'pg' ? e.sqlState : e.errno).toBe(kind === 'pg' ? '23505' : 1062);
    });

    it('a foreign-key violation names its constraint', async () => {
      const { error } = await runFixture(broker, `insert into ${CHILD} (id, pid) values (${p(1)}, ${p(2)})`, [1, 404]);
      const e = error!;
      expectClean(e);
      expect(e.code).toBe('DATABASE_ERROR');
      expect(e.constraint).toBe(`${CHILD}_fk`);
      if (kind === 'pg') expect(e.sqlState).toBe('23503');
      else expect(e.errno).toBe(1452);
    });

    it('a check-constraint violation names its constraint', async () => {
      const { error } = await runFixture(broker, `insert into ${UNIQ} (id, email) values (${p(1)}, ${p(2)})`, [-1, 'neg@example.org']);
      const e = error!;
      expectClean(e);
      expect(e.code).toBe('DATABASE_ERROR');
      expect(e.constraint).toBe(`${UNIQ}_id_positive`);
      if (kind === 'pg') expect(e.sqlState).toBe('23514');
      else expect(e.errno).toBe(4025);
    });

    it('a syntax error keeps its server fields; nothing of the config goes across', async () => {
      const { error } = await runFixture(broker, 'selec 1', []);
      const e = error!;
      expectClean(e);
      expect(e.code).toBe('DATABASE_ERROR');
      expect(e.sqlState).toBe(kind === 'pg' ? '42601' : '42000');
      if (kind === 'mysql') expect(e.errno).toBe(1064);
    });

    it('one bad request in a batch fails alone, with INVALID_ARGUMENT, and keeps the connection', async () => {
      // One connection: "the same session before and after" then cannot depend on when a second
      // connection, opened for the batch's waiters, arrives and goes on top of the idle stack.
      const single = await Broker.start(configFor(kind, { max: 1 }));
      try {
        await single.connect().query('db', 'select 1 as one');
        await batchKeepsConnection(single);
        expect(single.stats().databases.db).toMatchObject({ busy: 0, waiting: 0, open: 1 });
      } finally {
        await single.close();
      }
    });

    async function batchKeepsConnection(b: Broker): Promise<void> {
      const w: Worker = b.worker(FIXTURE, {
        workerData: {
          mode: 'batch',
          sql: kind === 'pg' ? 'select $1::text as v' : 'select ? as v',
          pidSql: kind === 'pg' ? 'select pg_backend_pid() as pid' : 'select connection_id() as pid',
        },
      });
      const out = await new Promise<{ before: number; after: number; results: Record<string, unknown>[] }>((resolve, reject) => {
        w.once('message', resolve);
        w.once('error', reject);
      });
      const [r1, fn, r3, circular, r5] = out.results;
      expect([r1, r3, r5]).toEqual([{ ok: '1' }, { ok: '3' }, { ok: '5' }]);
      // A function cannot cross the port: refused in the worker, with the caller's stack.
      expect(fn).toMatchObject({ code: 'INVALID_ARGUMENT', isBrokerError: true });
      expect(fn.stack).toContain('core-errors.mjs');
      // A circular object: pg cannot serialise it (mysql2 sends its string form). Either way the
      // session is healthy and is kept.
      if (kind === 'pg') expect(circular).toMatchObject({ code: 'INVALID_ARGUMENT', isBrokerError: true });
      else expect(circular).toEqual({ ok: '[object Object]' });
      expect(out.after).toBe(out.before);
    }

    it('a broker-side error (unknown server, connect refused) carries no secret either', async () => {
      const u = new URL(secretUrl(kind));
      u.port = '1'; // nothing listens there
      const dead = await Broker.start(configFor(kind, { url: u.href, max: 1, acquireTimeoutMillis: 300, connectTimeoutMillis: 200 }));
      try {
        const { error } = await runFixture(dead, 'select 1', []);
        const e = error!;
        expect(e.isBrokerError).toBe(true);
        expect(['ACQUIRE_TIMEOUT', 'CONNECTION_LOST']).toContain(e.code);
        expect(e.stack).toContain('core-errors.mjs');
        for (const text of [e.message, e.stack, e.json, e.inspected]) expect(text).not.toContain(CANARY);
      } finally {
        await dead.close();
      }
      expect(JSON.stringify(broker.config)).not.toContain(CANARY);
      expect(broker.metrics()).not.toContain(CANARY);
    });
  });
}

for (const kind of KINDS) {
  describe(`${kind}: errors and thread deaths through comlink (broker.spawn)`, () => {
    const bad = 'select * from core_no_such_table';

    it('a BrokerError thrown by the spawned module keeps its code and server fields in the main thread', async () => {
      const broker = await Broker.start(configFor(kind, { max: 1 }));
      try {
        const api = broker.spawn<Api>(API);
        expect(await api.query('select 1 as one')).toEqual([{ one: 1 }]);
        const err = (await bounded(api.query(bad), 5_000)).error as Record<string, unknown>;
        expect(err).toBeInstanceOf(Error);
        expect(err.code).toBe('DATABASE_ERROR');
        expect(err.sqlState).toBe(kind === 'pg' ? '42P01' : '42S02');
        expect(String(err.stack)).toContain('core-api.mjs');
      } finally {
        await broker.close();
      }
    });

    it('spawnEndpoint: errors arrive as BrokerError; a dead worker\'s calls reject at once instead of hanging', async () => {
      const broker = await Broker.start(configFor(kind, { max: 1 }));
      const host = (): Worker => {
        const port = broker.port();
        return new Worker(COMLINK_HOST, { workerData: { 'threadbroker:wiring': { port, module: API.href } }, transferList: [port] });
      };
      try {
        let closing = false;
        const w = host();
        const api = Comlink.wrap<Api>(spawnEndpoint(w, () => closing));
        expect(await api.query('select 1 as one')).toEqual([{ one: 1 }]);
        const err = (await bounded(api.query(bad), 5_000)).error as BrokerError;
        expect(err).toBeInstanceOf(BrokerError);
        expect(err.code).toBe('DATABASE_ERROR');
        expect(err.sqlState).toBe(kind === 'pg' ? '42P01' : '42S02');
        expect(Object.keys(err).every((k) => k === 'code' || FIELD_KEYS.includes(k))).toBe(true);
        // The worker crashes during a call: that call and every later one reject at once.
        const crashed = await bounded(api.crash(), 2_000);
        expect((crashed.error as BrokerError)?.code).toBe('THREAD_EXITED');
        const later = await bounded(api.query('select 1'), 500);
        expect((later.error as BrokerError)?.code).toBe('THREAD_EXITED');
        // Terminated while the broker closes: BROKER_CLOSED.
        const w2 = host();
        const api2 = Comlink.wrap<Api>(spawnEndpoint(w2, () => closing));
        expect(await api2.query('select 2 as two')).toEqual([{ two: 2 }]);
        closing = true;
        await w2.terminate();
        expect(((await bounded(api2.query('select 1'), 500)).error as BrokerError)?.code).toBe('BROKER_CLOSED');
      } finally {
        await broker.close();
      }
    });

    // KNOWN BUG (src/broker/broker.ts, not in this suite's files): broker.spawn wraps
    // nodeEndpoint(worker), so calls on a spawned module whose worker died (a crash, or
    // broker.close() terminating it) never settle. Fixed by `Comlink.wrap<T>(spawnEndpoint(worker,
    // () => this.#closing !== undefined))` in Broker.spawn. Remove `.fails` once that is in.
    it('broker.spawn: calls after the worker died or the broker closed reject within 1 s', async () => {
      const broker = await Broker.start(configFor(kind, { max: 1 }));
      const api = broker.spawn<Api>(API);
      const api2 = broker.spawn<Api>(API);
      expect(await api.query('select 1 as one')).toEqual([{ one: 1 }]);
      expect(await api2.query('select 1 as one')).toEqual([{ one: 1 }]);
      const crashed = await bounded(api.crash(), 1_000);
      await broker.close();
      const after = await bounded(api2.query('select 1'), 1_000);
      expect({ crashed: (crashed.error as BrokerError)?.code, after: (after.error as BrokerError)?.code }).toEqual({ crashed: 'THREAD_EXITED', after: 'BROKER_CLOSED' });
    });
  });
}
