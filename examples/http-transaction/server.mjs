// One database transaction across three HTTP requests, each handled by any of 4 worker threads.
//
//   node examples/http-transaction/server.mjs            # PostgreSQL at DATABASE_URL (default: local test db)
//   DRIVER=mysql DATABASE_URL=mysql://root@127.0.0.1:3306/test node examples/http-transaction/server.mjs
//   (PORT, default 3000; TABLE, default example_items)
//
// The main thread owns the broker (one pool per database) and the HTTP server; it only parses
// requests and hands them to a piscina pool of 4 workers (handlers.mjs). Requests are spread
// round-robin, so consecutive requests of one transaction run on different threads: the
// transaction lives in a broker reservation, named by the token the first request returns.
import http from 'node:http';
import { pathToFileURL } from 'node:url';
import { Broker } from 'threadbroker';

const HANDLERS = new URL('./handlers.mjs', import.meta.url).href;
const WORKERS = 4;
const MAX_BODY = 64 * 1024;

const DDL = {
  pg: (table) => `create table if not exists ${table} (id serial primary key, name varchar(200) not null)`,
  mysql: (table) => `create table if not exists ${table} (id int auto_increment primary key, name varchar(200) not null)`,
};
/** Table names go into SQL text, so only plain identifiers are accepted. */
const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

/** Piscina load balancer: the next free worker after the last one used, by thread id. */
function roundRobin() {
  let last = -1;
  return (task, workers) => {
    const free = workers.filter((w) => w.currentUsage === 0 && !w.terminating && !w.destroyed).sort((a, b) => a.id - b.id);
    if (free.length === 0) return null; // piscina queues the task until a worker is free
    const next = free.find((w) => w.id > last) ?? free[0];
    last = next.id;
    return next;
  };
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    let size = 0;
    const chunks = [];
    req.on('data', (c) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(Object.assign(new Error('body too large'), { status: 413 }));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      if (size === 0) return resolve(undefined);
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')));
      } catch {
        reject(Object.assign(new Error('the body is not JSON'), { status: 400 }));
      }
    });
    req.on('error', reject);
  });
}

function send(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/**
 * Starts the broker, the worker pool and the HTTP server.
 * @param {{ config: string | object, port?: number, host?: string, table?: string }} opts
 * @returns {Promise<{ url: string, broker: Broker, close: () => Promise<void> }>}
 */
export async function startServer({ config, port = 0, host = '127.0.0.1', table = 'example_items' }) {
  if (!IDENTIFIER.test(table)) throw new Error('table must be a plain identifier');
  const broker = await Broker.start(config);
  const database = broker.config.databases.main;
  if (database === undefined) throw new Error('the config needs a database named "main"');
  const kind = database.driver;
  await broker.connect().query('main', DDL[kind](table));

  const pool = broker.piscina({ filename: HANDLERS, minThreads: WORKERS, maxThreads: WORKERS, idleTimeout: Infinity, loadBalancer: roundRobin() });
  // Warm up: every worker connects to the broker before the first request is accepted.
  const barrier = new SharedArrayBuffer(4);
  await Promise.all(Array.from({ length: WORKERS }, () => pool.run({ warm: { barrier, workers: WORKERS } })));

  const server = http.createServer(async (req, res) => {
    try {
      const url = new URL(req.url ?? '/', 'http://localhost');
      const body = await readBody(req);
      const tokenHeader = req.headers['transaction-token'];
      const out = await pool.run({ method: req.method, path: url.pathname, token: Array.isArray(tokenHeader) ? tokenHeader[0] : tokenHeader, body, kind, table });
      send(res, out.status, out.body);
    } catch (err) {
      send(res, err.status ?? 500, { error: { code: err.status ? 'BAD_REQUEST' : 'INTERNAL', message: String(err.message ?? err) } });
    }
  });
  await new Promise((resolve) => server.listen(port, host, resolve));
  const address = server.address();

  return {
    url: `http://${host}:${address.port}`,
    broker,
    async close() {
      await new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await pool.destroy();
      await broker.close(); // rolls back any transaction still open
    },
  };
}

// Run directly: `node examples/http-transaction/server.mjs`.
if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const driver = process.env.DRIVER ?? 'pg';
  const url = process.env.DATABASE_URL ?? (driver === 'pg' ? 'postgres://postgres@127.0.0.1:5432/test' : 'mysql://root@127.0.0.1:3306/test');
  const app = await startServer({
    config: { databases: { main: { driver, url, max: 8 } }, reservations: { idleTimeoutMillis: 30_000, maxLifetimeMillis: 300_000 } },
    port: Number(process.env.PORT ?? 3000),
    table: process.env.TABLE ?? 'example_items',
  });
  console.log(`listening on ${app.url}`);
  console.log(`  curl -s -XPOST ${app.url}/transactions -d '{"items":["a"]}'            # -> {"token": ...}`);
  console.log(`  curl -s -XPOST ${app.url}/transactions/items -H "transaction-token: $T" -d '{"items":["b"]}'`);
  console.log(`  curl -s -XPOST ${app.url}/transactions/commit -H "transaction-token: $T"`);
  console.log(`  curl -s ${app.url}/items`);
  const stop = () => {
    app.close().then(() => process.exit(0), () => process.exit(1));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}
