/**
 * `threadbroker demo` / `npm start`: one short run that shows every headline feature on the
 * config's databases (an embedded PostgreSQL by default).
 * @module
 */
import { fileURLToPath } from 'node:url';
import { Broker } from '../broker/broker.js';
import type { DriverKind } from '../config/types.js';
import { RELAY_BYTES, type DemoTask } from './demo-tasks.js';
import { Progress } from './progress.js';

const TASKS = fileURLToPath(new URL('./demo-tasks.js', import.meta.url));

/** Options of the demo. */
export interface DemoOptions {
  config: string;
  workers: number;
  out: NodeJS.WritableStream & { isTTY?: boolean };
}

const DDL: Record<DriverKind, { users: string; events: string }> = {
  pg: {
    users: 'create table if not exists users (id serial primary key, full_name text not null, email text not null, version int not null default 1)',
    events: 'create table if not exists events (id serial primary key, user_id int not null, kind text not null, detail text)',
  },
  mysql: {
    users: 'create table if not exists users (id int auto_increment primary key, full_name varchar(200) not null, email varchar(200) not null, version int not null default 1)',
    events: 'create table if not exists events (id int auto_increment primary key, user_id int not null, kind varchar(50) not null, detail text)',
  },
};

/** Runs the demo; rejects if any step fails. */
export async function runDemo(opts: DemoOptions): Promise<void> {
  const p = new Progress(opts.out);
  p.line('threadbroker demo: N worker threads, one broker, a hard cap of connections per database.\n');
  const broker = await p.step(`start the broker on ${opts.config}`, () => Broker.start(opts.config));
  const pool = broker.piscina({ filename: TASKS, minThreads: opts.workers, maxThreads: opts.workers });
  try {
    const db = broker.connect();
    const cfg = broker.config;
    const app = cfg.databases.app;
    const audit = cfg.databases.audit;
    if (app?.driver !== 'pg' || audit === undefined || cfg.classes.User === undefined || cfg.classes.Event === undefined) {
      throw new Error('the demo needs databases "app" (pg) and "audit" and classes User and Event, as in config.json5');
    }
    await p.step('create the demo tables (users in app, events in audit)', async () => {
      await db.query('app', DDL.pg.users);
      await db.query('audit', DDL[audit.driver].events);
    });

    const run = (t: DemoTask): Promise<Record<string, unknown>> => pool.run(t) as Promise<Record<string, unknown>>;

    const perWorker = 150;
    const burst = await p.step(`${opts.workers} workers × ${perWorker} concurrent queries on app (max ${app.max})`, async (update) => {
      let peak = 0;
      let serverPeak = -1;
      let stop = false;
      const appName = (await db.query<{ d: string }>('app', 'select current_database() as d')).rows[0].d;
      // The server-side count is sampled through audit's pool (same cluster when embedded), so the
      // sampler takes none of app's connections; on another server it is left out.
      const sameServer = audit.driver === 'pg' && app.embedded !== undefined && audit.embedded?.dataDir === app.embedded.dataDir;
      const sampler = (async () => {
        for (let i = 0; !stop && i < 10_000; i++) {
          const open = broker.stats().databases.app.open;
          if (open > peak) peak = open;
          if (sameServer) {
            const r = await db.query<{ n: number }>('audit', "select count(*)::int as n from pg_stat_activity where application_name = 'threadbroker' and datname = $1", [appName]);
            serverPeak = Math.max(serverPeak, r.rows[0].n);
          }
          update(`peak open ${peak}/${app.max}${serverPeak >= 0 ? `, server sees ${serverPeak}` : ''}`);
          await new Promise((r) => setTimeout(r, 2));
        }
      })();
      const results = await Promise.all(Array.from({ length: opts.workers }, () => run({ step: 'burst', queries: perWorker })));
      stop = true;
      await sampler;
      const threads = new Set(results.map((r) => r.threadId)).size;
      const ok = results.every((r) => r.ok === true);
      if (!ok) throw new Error('a query returned a wrong answer');
      return { threads, peak, serverPeak, total: results.reduce((n, r) => n + Number(r.queries), 0) };
    });
    const server = burst.serverPeak >= 0 ? `; the server counted at most ${burst.serverPeak}` : '';
    p.line(`  ${burst.total} queries from ${burst.threads} threads; connections open at peak: ${burst.peak} (max ${app.max})${server}`);

    const crud = await p.step('mapper CRUD on User (app) and Event (audit), raw SQL on each class database', () => run({ step: 'crud', tag: String(Date.now()) }));
    p.line(`  user ${JSON.stringify(crud.user)} (version ${String(crud.version)})`);
    p.line(`  event ${JSON.stringify(crud.event)} stored in database "${String(crud.eventsDatabase)}"; users in app: ${String(crud.usersInApp)}`);

    const relay = new SharedArrayBuffer(RELAY_BYTES);
    const name = `relay-${Date.now()}`;
    const steps = await p.step('one transaction across three worker threads (reserve → attach → commit)', () => Promise.all(
      (['begin', 'continue', 'commit'] as const).map((role) => run({ step: 'relay', role, relay, name })),
    ));
    steps.forEach((s, i) => p.line(`  step ${i + 1} on thread ${String(s.threadId)}: ${String(s.did)}`));
    const committed = await db.query<{ n: number }>('app', 'select count(*)::int as n from users where full_name like $1', [`${name}%`]);
    p.line(`  rows visible after commit: ${committed.rows[0].n}`);

    const leaseName = `lease-${Date.now()}`;
    const idleMillis = 300;
    const lease = await p.step(`a lease that expires (idle ${idleMillis} ms) and rolls back`, async (update) => {
      const begun = await run({ step: 'lease-begin', name: leaseName, idleMillis });
      update('waiting for the housekeeper');
      const until = Date.now() + idleMillis + cfg.reservations.housekeepingMillis * 3 + 2000;
      while (broker.stats().databases.app.reserved > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
      return run({ step: 'lease-check', token: String(begun.token), name: leaseName });
    });
    p.line(`  the token now answers ${String(lease.attach)}; rows left from the rolled-back transaction: ${String(lease.rowsLeft)}`);

    p.line('\nfinal stats:');
    for (const [n, s] of Object.entries(broker.stats().databases)) {
      p.line(`  ${n.padEnd(6)} max ${s.max}  open ${s.open}  idle ${s.idle}  busy ${s.busy}  waiting ${s.waiting}  reserved ${s.reserved}`);
    }
    if (burst.peak > app.max || burst.serverPeak > app.max || lease.attach !== 'TOKEN_EXPIRED' || Number(lease.rowsLeft) !== 0 || committed.rows[0].n !== 2) {
      throw new Error('the demo saw an unexpected result (see above)');
    }
  } finally {
    await pool.destroy();
    await p.step('close the broker (and the embedded server)', () => broker.close());
  }
}
