/**
 * RELIABILITY.md S5, secrets never leak: the configs carry the canary password (MariaDB logs in
 * with it as its own login; PostgreSQL's trust authentication ignores it, the config still holds
 * it). Everything a careless application could print is captured and searched for it: errors of
 * every kind (from the server, the pool, tokens, connect and login failures, limits), in the main
 * thread and as they arrive in worker threads, through `message`, `stack`, `JSON.stringify`,
 * `util.inspect` with hidden fields and causes; `util.inspect` of the broker and its config;
 * stats, metrics and the admin endpoint's bodies; the HTTP error bodies of the example app; and
 * all output of a child process that logs everything. Zero hits; the reporter also scans every
 * line the whole suite prints.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { inspect } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Broker, BrokerError } from 'threadbroker';
import { record } from '../helpers/figures.js';
import { CANARY, CANARY_USER, canaryUrl, relConfig, relUrl, rowsSql, serverOf } from '../helpers/reliability.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';
import { BROKER_USER, KINDS } from '../helpers/test-setup.js';

const CHILD = fileURLToPath(new URL('../fixtures/workers/rel-secrets-child.mjs', import.meta.url));
const EXAMPLE = new URL('../../examples/http-transaction/server.mjs', import.meta.url);
const COMMANDER = new URL('../fixtures/workers/core-commander.mjs', import.meta.url);

interface ExampleModule {
  startServer(opts: { config: object; port?: number; host?: string; table?: string }): Promise<{ url: string; close(): Promise<void> }>;
}

/** Everything one can print of a value. */
function renderings(v: unknown): string[] {
  const out = [String(v), inspect(v, { showHidden: true, depth: 20 }), inspect(v)];
  try {
    out.push(JSON.stringify(v));
  } catch {
    /* cyclic */
  }
  if (v instanceof Error) out.push(String(v.stack), v.message);
  return out;
}

for (const kind of KINDS) {
  describe(`${kind}: S5 secrets never leak`, () => {
    let proxy: TcpProxy;

    beforeAll(async () => {
      proxy = await TcpProxy.start(serverOf(kind));
    });

    afterAll(async () => {
      await proxy.close();
    });

    it('the canary password appears in no captured output', async () => {
      const captured: string[] = [];
      const url = kind === 'mysql' ? canaryUrl() : relUrl(kind);
      // The canary really is the password in use (MariaDB checks it).
      const broker = await Broker.start({ ...relConfig(kind, { url, max: 2, maxRows: 10, maxRequestBytes: 1024 }), admin: { port: 0 } });
      const db = broker.connect();
      expect((await db.query('db', 'select 1 as one')).rows).toEqual([{ one: 1 }]);
      const errors: unknown[] = [];
      const catchAll = async (p: Promise<unknown>) => p.then(() => undefined, (e: unknown) => errors.push(e));
      await catchAll(db.query('db', 'select * from no_such_table_s5'));
      await catchAll(db.query('db', 'selec 1'));
      await catchAll(db.query('db', rowsSql(kind, 11)));
      await catchAll(db.query('db', 'select 1', ['x'.repeat(2000)]));
      await catchAll(db.attach('tb1.forged.token'));
      const r = await db.reserve('db');
      await catchAll(r.query('select nonsense'));
      await r.release();
      await catchAll(r.query('select 1'));
      // Connect and login failures, with the canary in the config of the failing broker.
      const badDb = kind === 'pg' ? new URL(relUrl(kind)) : new URL(canaryUrl());
      badDb.pathname = kind === 'pg' ? '/no_such_database_s5' : '/mysql';
      const refusedPort = new URL(url);
      await proxy.down();
      refusedPort.port = String(proxy.port);
      for (const u of [badDb.href, refusedPort.href]) {
        const b = await Broker.start(relConfig(kind, { url: u, max: 1, acquireTimeoutMillis: 400, connectTimeoutMillis: 300 }));
        await catchAll(b.connect().query('db', 'select 1'));
        captured.push(...renderings(b), ...renderings(b.config), inspect(b.config, { showHidden: true, getters: true, depth: 20 }));
        await b.close();
      }
      await proxy.up();
      // A config error holding the canary.
      await catchAll(Broker.start(relConfig(kind, { url: `${kind === 'pg' ? 'mysql' : 'postgres'}://u:${CANARY}@127.0.0.1/x` })));
      for (const e of errors) {
        expect(e).toBeInstanceOf(BrokerError);
        captured.push(...renderings(e));
        if ((e as Error).cause !== undefined) captured.push(...renderings((e as Error).cause));
      }
      // Errors as a worker thread receives them.
      const w = broker.worker(COMMANDER);
      const fromWorker = await new Promise<unknown>((resolve) => {
        w.on('message', (m: { ready?: boolean; tag?: string; sent?: boolean }) => {
          if (m.ready) w.postMessage({ op: 'query', tag: 'x', sql: 'select * from no_such_table_s5' });
          else if (m.tag === 'x' && !m.sent) resolve(m);
        });
      });
      await w.terminate();
      captured.push(...renderings(fromWorker));
      // The broker, its config, stats, metrics and the admin endpoint.
      captured.push(...renderings(broker), ...renderings(broker.config), inspect(broker.config, { showHidden: true, getters: true, depth: 20 }));
      captured.push(JSON.stringify(broker.stats()), broker.metrics());
      for (const path of ['/stats', '/metrics', '/nope']) captured.push(await (await fetch(`${broker.adminUrl}${path}`)).text());
      await broker.close();
      // The example app's HTTP error bodies.
      const { startServer } = (await import(EXAMPLE.href)) as ExampleModule;
      const app = await startServer({ config: { databases: { main: { driver: kind, url, max: 4 } } }, port: 0, host: '127.0.0.1', table: `example_items_s5_${BROKER_USER}` });
      try {
        for (const [method, path, body, token] of [
          ['POST', '/transactions/items', { names: ['a'] }, 'tb1.forged'],
          ['POST', '/transactions/commit', undefined, 'not-a-token'],
          ['POST', '/transactions', { names: ['x'.repeat(500)] }, undefined],
          ['POST', '/transactions', '{', undefined],
          ['GET', '/nope', undefined, undefined],
        ] as const) {
          const headers: Record<string, string> = { 'content-type': 'application/json' };
          if (token !== undefined) headers['transaction-token'] = token;
          const res = await fetch(`${app.url}${path}`, { method, headers, body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body) });
          captured.push(`${res.status} ${await res.text()}`);
        }
      } finally {
        await app.close();
      }
      // A child process that logs everything it meets.
      const badChild = relConfig(kind, { url: badDb.href, max: 1, acquireTimeoutMillis: 400, connectTimeoutMillis: 300 });
      const child = spawn(process.execPath, [CHILD, JSON.stringify(relConfig(kind, { url, max: 2 })), kind, JSON.stringify(badChild)], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (out += d.toString()));
      const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
      expect(code).toBe(0);
      expect(out).toContain('no_such_table_s5');
      captured.push(out);
      const text = captured.join('\n');
      const hits = text.split(CANARY).length - 1;
      if (hits > 0 && process.env.TB_REL_DEBUG) {
        for (const [i, c] of captured.entries()) if (c.includes(CANARY)) console.log('LEAK in capture', i, c.slice(Math.max(0, c.indexOf(CANARY) - 400), c.indexOf(CANARY) + 100).replaceAll(CANARY, '<CANARY>'));
      }
      const figures = { capturedBytes: Buffer.byteLength(text), errorsRendered: errors.length, canaryHits: hits, login: kind === 'mysql' ? CANARY_USER : `${BROKER_USER} (trust; the URL holds the canary)` };
      record('S5', kind, figures);
      console.log(`[S5] ${kind}: ${JSON.stringify(figures)}`);
      expect(hits).toBe(0);
      expect(errors.length).toBeGreaterThanOrEqual(8);
    });
  });
}
