/**
 * Issue 3 item 10, end to end on 127.0.0.1: the example in examples/http-transaction — an HTTP
 * server whose handlers run in a piscina pool of 4 workers. Request 1 reserves, begins, writes and
 * answers the token; request 2, on another worker, writes more; request 3 commits. A concurrent
 * reader never sees uncommitted rows. Variants: rollback in request 3; a lease that expires
 * between requests (the rows are gone, the token answers TOKEN_EXPIRED as HTTP 410). And the
 * example runs on its own (`node examples/http-transaction/server.mjs`).
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Broker } from 'threadbroker';
import { SlotTable } from '../../src/slots/slot-table.js';
import { slotTableOf } from '../helpers/rsv-helpers.js';
import { BROKER_USER, KINDS, brokerUrlOf } from '../helpers/test-setup.js';

const SERVER = new URL('../../examples/http-transaction/server.mjs', import.meta.url);
/** The example's table, per broker login, so concurrent runs under other logins never share it. */
const TABLE = `example_items_${BROKER_USER}`;

interface Example {
  url: string;
  broker: Broker;
  close(): Promise<void>;
}
interface ExampleModule {
  startServer(opts: { config: object; port?: number; host?: string; table?: string }): Promise<Example>;
}
interface Answer {
  status: number;
  body: { token?: string; thread: number; items?: string[]; error?: { code: string; message: string } };
}

async function call(base: string, method: string, path: string, body?: unknown, token?: string): Promise<Answer> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (token !== undefined) headers['transaction-token'] = token;
  const res = await fetch(`${base}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as Answer['body'] };
}

async function until(cond: () => boolean | Promise<boolean>, what: string, millis = 5000): Promise<void> {
  const end = Date.now() + millis;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

for (const kind of KINDS) {
  describe(`${kind}: one transaction across three HTTP requests (examples/http-transaction)`, () => {
    let app: Example;
    const get = (path: string) => call(app.url, 'GET', path);
    const post = (path: string, body?: unknown, token?: string) => call(app.url, 'POST', path, body, token);
    const items = async () => (await get('/items')).body.items;

    let table: SlotTable;

    beforeAll(async () => {
      const { startServer } = (await import(SERVER.href)) as ExampleModule;
      app = await startServer({
        config: { databases: { main: { driver: kind, url: brokerUrlOf(kind), max: 6 } }, reservations: { housekeepingMillis: 50 } },
        table: TABLE,
      });
      table = await slotTableOf(app.broker);
    });

    beforeEach(async () => {
      // A test that failed half-way may leave its transaction open; end it before cleaning up.
      await until(() => app.broker.stats().databases.main.reserved === 0, 'earlier reservations to end', 2000).catch(() => undefined);
      await app.broker.connect().query('main', `delete from ${TABLE}`);
    });

    afterAll(async () => {
      await app?.close();
    });

    it('commits in request 3 what requests 1 and 2 wrote on other workers; a reader never sees it before', async () => {
      // A concurrent reader in the server's process, reading in a loop for the whole transaction
      // (HTTP reads go between the steps, so the round-robin over workers stays predictable).
      const db = app.broker.connect();
      const seen: { n: number; beforeCommit: boolean }[] = [];
      let committing = false;
      let stop = false;
      const reader = (async () => {
        for (let i = 0; i < 20_000 && !stop; i++) {
          const beforeCommit = !committing;
          const { rows } = await db.query<{ n: unknown }>('main', `select count(*) as n from ${TABLE}`);
          seen.push({ n: Number(rows[0].n), beforeCommit });
        }
      })();
      try {
        const first = await post('/transactions', { items: ['a'] });
        expect(first.status).toBe(201);
        const token = first.body.token!;
        expect(await items()).toEqual([]);
        const second = await post('/transactions/items', { items: ['b', 'c'] }, token);
        expect(second.status).toBe(200);
        expect(second.body.thread).not.toBe(first.body.thread);
        expect(await items()).toEqual([]);
        committing = true;
        const third = await post('/transactions/commit', undefined, token);
        expect(third.status).toBe(200);
        expect(third.body.thread).not.toBe(second.body.thread);
        expect(await items()).toEqual(['a', 'b', 'c']);
        // The token named that transaction; it is over.
        const replay = await post('/transactions/items', { items: ['d'] }, token);
        expect(replay.status).toBe(410);
        expect(replay.body.error!.code).toBe('TOKEN_EXPIRED');
      } finally {
        stop = true;
        await reader;
      }
      expect(seen.length).toBeGreaterThan(0);
      expect(seen.every((s) => s.n === 0 || s.n === 3)).toBe(true);
      expect(seen.filter((s) => s.beforeCommit).every((s) => s.n === 0)).toBe(true);
      expect(app.broker.stats().databases.main.reserved).toBe(0);
    });

    it('rolls back in request 3: nothing was ever visible, and the token is over', async () => {
      const first = await post('/transactions', { items: ['x'] });
      const token = first.body.token!;
      expect((await post('/transactions/items', { items: ['y'] }, token)).status).toBe(200);
      const third = await post('/transactions/rollback', undefined, token);
      expect(third.status).toBe(200);
      expect(await items()).toEqual([]);
      expect((await post('/transactions/commit', undefined, token)).status).toBe(410);
      expect(app.broker.stats().databases.main.reserved).toBe(0);
    });

    it('answers 410 TOKEN_EXPIRED when the lease expired between requests, and the rows are gone', async () => {
      const first = await post('/transactions', { items: ['late'], idleTimeoutMillis: 200 });
      expect(first.status).toBe(201);
      // Waiting on the broker's figures, not on the token (using it would keep the lease alive).
      await until(() => app.broker.stats().databases.main.reserved === 0, 'the lease to expire');
      const second = await post('/transactions/items', { items: ['later'] }, first.body.token);
      expect(second.status).toBe(410);
      expect(second.body.error!.code).toBe('TOKEN_EXPIRED');
      expect((await post('/transactions/commit', undefined, first.body.token)).status).toBe(410);
      expect(await items()).toEqual([]);
    });

    it('lets a new transaction wait for a slot on a worker whose earlier transaction was handed to its client', async () => {
      // max 6: 5 slots. Five open transactions, started round-robin, so every worker owns one.
      const open = [];
      for (let i = 0; i < 5; i++) open.push(await post('/transactions', { items: [`t${i}`] }));
      expect(open.map((o) => o.status)).toEqual([201, 201, 201, 201, 201]);
      expect(app.broker.stats().databases.main.reserved).toBe(5);
      // A sixth lands on a worker that owns one of them; it must wait (bounded), not be refused:
      // that reservation was handed over and another request will end it.
      let settled = false;
      const sixth = post('/transactions', { items: ['t5'] }).finally(() => {
        settled = true;
      });
      await until(() => settled || table.waiters(0) === 1, 'the sixth to queue or be answered');
      expect((await post('/transactions/commit', undefined, open[0].body.token)).status).toBe(200);
      const got = await sixth;
      expect(got.status).toBe(201);
      for (const o of [...open.slice(1), got]) expect((await post('/transactions/rollback', undefined, o.body.token)).status).toBe(200);
      expect(await items()).toEqual(['t0']);
      expect(app.broker.stats().databases.main.reserved).toBe(0);
    });

    it('answers 400 to a forged or missing token and to bad input, without touching the transaction', async () => {
      const first = await post('/transactions', { items: ['kept'] });
      const token = first.body.token!;
      const forged = token.slice(0, -2) + (token.endsWith('AA') ? 'QA' : 'AA');
      const refused = await post('/transactions/commit', undefined, forged);
      expect(refused.status).toBe(400);
      expect(refused.body.error!.code).toBe('TOKEN_INVALID');
      expect(JSON.stringify(refused.body)).not.toContain(token.split('.').at(-1));
      expect((await post('/transactions/commit')).status).toBe(400);
      expect((await post('/transactions', { items: [] })).status).toBe(400);
      expect((await get('/nowhere')).status).toBe(404);
      expect((await post('/transactions/commit', undefined, token)).status).toBe(200);
      expect(await items()).toEqual(['kept']);
    });
  });
}

describe('examples/http-transaction/server.mjs', () => {
  it('runs on its own and serves a transaction', async () => {
    const kind = KINDS[0];
    const child = spawn(process.execPath, [fileURLToPath(SERVER)], {
      env: { ...process.env, PORT: '0', DRIVER: kind, DATABASE_URL: brokerUrlOf(kind), TABLE },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    try {
      const base = await new Promise<string>((resolve, reject) => {
        let out = '';
        const timer = setTimeout(() => reject(new Error(`the example did not start: ${out}`)), 15_000);
        child.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          const m = /listening on (http:\/\/[\d.:]+)/.exec(out);
          if (m) {
            clearTimeout(timer);
            resolve(m[1]);
          }
        });
        child.once('exit', (code) => reject(new Error(`the example exited with ${code}: ${out}`)));
      });
      const first = await call(base, 'POST', '/transactions', { items: ['standalone'] });
      expect(first.status).toBe(201);
      expect((await call(base, 'POST', '/transactions/rollback', undefined, first.body.token)).status).toBe(200);
      const exited = new Promise<number | null>((r) => child.once('exit', r));
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });
});
