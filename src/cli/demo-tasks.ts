/**
 * The demo's piscina tasks. Each runs in a worker thread and talks to the broker through
 * `connect()`. The relay's three steps run at once on three threads and pass the token through a
 * small shared buffer, the way an HTTP client would carry it between requests.
 * @module
 */
import { threadId } from 'node:worker_threads';
import { BrokerError, connect } from '../worker.js';

/** A task the demo submits. */
export type DemoTask =
  | { step: 'burst'; queries: number }
  | { step: 'crud'; tag: string }
  | { step: 'relay'; role: 'begin' | 'continue' | 'commit'; relay: SharedArrayBuffer; name: string }
  | { step: 'lease-begin'; name: string; idleMillis: number }
  | { step: 'lease-check'; token: string; name: string };

interface User { id?: number; name: string; email: string; version?: number }
interface Event { id?: number; user_id: number; kind: string; detail: string }

/** Relay layout: word 0 = stage reached, word 1 = token length, then the token's bytes. */
export const RELAY_BYTES = 8 + 256;

/**
 * Waits until the relay reaches `stage`. Waking comes from `Atomics.notify` by the previous step;
 * the stage is re-read after every wake, and the wait is bounded.
 */
async function waitStage(relay: SharedArrayBuffer, stage: number, millis: number): Promise<string> {
  const words = new Int32Array(relay, 0, 2);
  const deadline = Date.now() + millis;
  for (;;) {
    const seen = Atomics.load(words, 0);
    if (seen >= stage) break;
    const left = deadline - Date.now();
    if (left <= 0) throw new Error(`the relay did not reach stage ${stage} within ${millis}ms`);
    await Atomics.waitAsync(words, 0, seen, left).value;
  }
  const len = Atomics.load(words, 1);
  return Buffer.from(new Uint8Array(relay, 8, len)).toString('utf8');
}

function advance(relay: SharedArrayBuffer, stage: number, token?: string): void {
  const words = new Int32Array(relay, 0, 2);
  if (token !== undefined) {
    const bytes = Buffer.from(token, 'utf8');
    new Uint8Array(relay, 8, bytes.length).set(bytes);
    Atomics.store(words, 1, bytes.length);
  }
  // The token bytes are written before the stage is published; a reader loads the stage first.
  Atomics.store(words, 0, stage);
  Atomics.notify(words, 0);
}

/** Runs one demo step; returns what the main thread prints. */
export default async function run(task: DemoTask): Promise<Record<string, unknown>> {
  const db = await connect();
  switch (task.step) {
    case 'burst': {
      // Many concurrent statements from this thread; the broker queues them onto at most `max` connections.
      const all = Array.from({ length: task.queries }, (_, i) => db.query<{ n: number }>('app', 'select pg_sleep(0.002), $1::int as n', [i]));
      const rows = await Promise.all(all);
      const ok = rows.every((r, i) => r.rows[0].n === i);
      return { threadId, queries: rows.length, ok };
    }
    case 'crud': {
      const users = db.model<User>('User');
      const events = db.model<Event>('Event');
      const ada = await users.insert({ name: `Ada ${task.tag}`, email: `ada-${task.tag}@example.org` });
      ada.name = `Ada L. ${task.tag}`;
      const updated = await users.update(ada);
      const found = await users.find({ email: `ada-${task.tag}@example.org` }, { limit: 1 });
      const ev = await events.insert({ user_id: Number(ada.id), kind: 'signup', detail: `user ${String(ada.id)} in another database` });
      const raw = await users.database.query<{ n: string }>('select count(*)::text as n from users');
      const rawEvents = await events.database.query<{ db: string }>('select current_database() as db');
      return { threadId, user: found[0], version: updated.version, event: ev, usersInApp: Number(raw.rows[0].n), eventsDatabase: rawEvents.rows[0].db };
    }
    case 'relay': {
      if (task.role === 'begin') {
        const r = await db.reserve('app');
        await r.begin();
        await r.query('insert into users(full_name, email, version) values ($1, $2, 1)', [`${task.name} (step 1)`, `${task.name}-1@example.org`]);
        advance(task.relay, 1, r.token);
        return { threadId, did: 'reserve + begin + insert' };
      }
      const token = await waitStage(task.relay, task.role === 'continue' ? 1 : 2, 15_000);
      const r = await db.attach(token);
      if (task.role === 'continue') {
        await r.query('insert into users(full_name, email, version) values ($1, $2, 1)', [`${task.name} (step 2)`, `${task.name}-2@example.org`]);
        advance(task.relay, 2);
        return { threadId, did: 'attach + insert' };
      }
      await r.commit();
      await r.release();
      return { threadId, did: 'attach + commit + release' };
    }
    case 'lease-begin': {
      const r = await db.reserve('app', { idleTimeoutMillis: task.idleMillis });
      await r.begin();
      await r.query('insert into users(full_name, email, version) values ($1, $2, 1)', [task.name, `${task.name}@example.org`]);
      return { threadId, token: r.token };
    }
    case 'lease-check': {
      let code = 'accepted';
      try {
        await db.attach(task.token);
      } catch (err) {
        code = err instanceof BrokerError ? err.code : String(err);
      }
      const left = await db.query<{ n: string }>('app', 'select count(*)::text as n from users where full_name = $1', [task.name]);
      return { threadId, attach: code, rowsLeft: Number(left.rows[0].n) };
    }
  }
}
