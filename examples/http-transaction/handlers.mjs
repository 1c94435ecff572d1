// The request handlers, run by a piscina pool of worker threads. Each request may land on any
// worker; the transaction that spans requests lives in a broker reservation, named by its token.
//
//   POST /transactions            reserve, BEGIN, insert the items; answer the token
//   POST /transactions/items      (Transaction-Token header) attach, insert more items
//   POST /transactions/commit     (Transaction-Token header) attach, COMMIT, release
//   POST /transactions/rollback   (Transaction-Token header) attach, ROLLBACK, release
//   GET  /items                   plain query: what everybody else sees (committed rows only)
import { threadId } from 'node:worker_threads';
import { connect } from 'threadbroker/worker';

/** How each broker error code answers over HTTP. Callers branch on `code`, never on text. */
const STATUS = {
  INVALID_ARGUMENT: 400,
  TOKEN_INVALID: 400, // forged, malformed, or issued by another broker (the message names it)
  TOKEN_EXPIRED: 410, // genuine but over: committed, rolled back, released, or its lease expired
  ACQUIRE_TIMEOUT: 503,
  QUEUE_FULL: 503,
  POOL_DEADLOCK: 503,
  BROKER_CLOSED: 503,
  TX_CONNECTION_LOST: 503,
  CONNECTION_LOST: 503,
};

const DATABASE = 'main';

/** `$1, $2` on PostgreSQL, `?, ?` on MySQL. */
const placeholders = (kind, n) => Array.from({ length: n }, (_, i) => (kind === 'pg' ? `$${i + 1}` : '?')).join(', ');

function items(body) {
  const list = body?.items;
  if (!Array.isArray(list) || list.length === 0 || list.length > 100 || !list.every((x) => typeof x === 'string' && x.length > 0 && x.length <= 200)) {
    throw Object.assign(new Error('items must be 1 to 100 non-empty strings of at most 200 characters'), { code: 'INVALID_ARGUMENT' });
  }
  return list;
}

async function insert(r, { kind, table }, names) {
  for (const name of names) await r.query(`insert into ${table} (name) values (${placeholders(kind, 1)})`, [name]);
}

function token(req) {
  const t = req.token;
  if (typeof t !== 'string' || t.length === 0) throw Object.assign(new Error('the Transaction-Token header is missing'), { code: 'INVALID_ARGUMENT' });
  return t;
}

/** Lease of a new transaction: the client may ask for a shorter or longer idle timeout, within bounds. */
function lease(body) {
  const idle = body?.idleTimeoutMillis;
  if (idle === undefined) return {};
  if (!Number.isInteger(idle) || idle < 100 || idle > 60_000) {
    throw Object.assign(new Error('idleTimeoutMillis must be an integer between 100 and 60000'), { code: 'INVALID_ARGUMENT' });
  }
  return { idleTimeoutMillis: idle };
}

async function route(db, req) {
  switch (`${req.method} ${req.path}`) {
    case 'POST /transactions': {
      const names = items(req.body);
      const r = await db.reserve(DATABASE, { waitMillis: 2000, ...lease(req.body) });
      try {
        await r.begin();
        await insert(r, req, names);
      } catch (err) {
        await r.release().catch(() => undefined);
        throw err;
      }
      // Reading the token hands the reservation over: it now lives by its lease, not by this thread.
      return { status: 201, body: { token: r.token } };
    }
    case 'POST /transactions/items': {
      const names = items(req.body);
      const r = await db.attach(token(req));
      await insert(r, req, names);
      return { status: 200, body: { added: names.length } };
    }
    case 'POST /transactions/commit':
    case 'POST /transactions/rollback': {
      const r = await db.attach(token(req));
      const commit = req.path.endsWith('commit');
      try {
        await (commit ? r.commit() : r.rollback());
      } finally {
        await r.release().catch(() => undefined);
      }
      return { status: 200, body: commit ? { committed: true } : { rolledBack: true } };
    }
    case 'GET /items': {
      const { rows } = await db.query(DATABASE, `select name from ${req.table} order by id`);
      return { status: 200, body: { items: rows.map((row) => row.name) } };
    }
    default:
      return { status: 404, body: { error: { code: 'NOT_FOUND', message: `no route ${req.method} ${req.path}` } } };
  }
}

/** Warm-up task: every worker connects, then waits at a barrier until all of them have. */
async function warm({ barrier, workers }) {
  await connect();
  const count = new Int32Array(barrier);
  Atomics.add(count, 0, 1);
  Atomics.notify(count, 0);
  const until = Date.now() + 10_000;
  for (let seen = Atomics.load(count, 0); seen < workers && Date.now() < until; seen = Atomics.load(count, 0)) {
    await Atomics.waitAsync(count, 0, seen, 100).value;
  }
  return threadId;
}

/** One HTTP request: `{ method, path, token, body, kind, table }` in (the server validated `table`), `{ status, body }` out. */
export default async function handle(req) {
  if (req.warm) return warm(req.warm);
  try {
    const db = await connect();
    const out = await route(db, req);
    return { status: out.status, body: { ...out.body, thread: threadId } };
  } catch (err) {
    const code = typeof err?.code === 'string' ? err.code : 'INTERNAL';
    // Tokens are bearer secrets: never put them in logs or error bodies.
    return { status: STATUS[code] ?? 500, body: { error: { code, message: String(err?.message ?? err) }, thread: threadId } };
  }
}
