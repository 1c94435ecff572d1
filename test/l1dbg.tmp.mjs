import { Broker } from 'threadbroker';
const kind = 'pg';
const tables = { ledger: 'rel_l1_ledger_tb_rel', accounts: 'rel_l1_acct_tb_rel', rows: 'rel_l1_rows_tb_rel', accountCount: 16 };
const broker = await Broker.start({ databases: { db: { driver: kind, url: 'postgres://postgres@127.0.0.1:5432/test', max: 8, acquireTimeoutMillis: 30000, queryTimeoutMillis: 30000 } }, reservations: { housekeepingMillis: 50 } });
const db = broker.connect();
for (const s of [`drop table if exists ${tables.ledger}`,`drop table if exists ${tables.accounts}`,`drop table if exists ${tables.rows}`,
 `create table ${tables.ledger} (op_id varchar(36) primary key, worker int not null, kind varchar(10) not null, acct_from int, acct_to int, amount int, note varchar(40))`,
 `create table ${tables.accounts} (id int primary key, balance bigint not null)`,
 `create table ${tables.rows} (id int primary key, label varchar(40) not null, n bigint not null)`,
 `insert into ${tables.accounts} select g, 1000000 from generate_series(1, 16) g`,
 `insert into ${tables.rows} select g, 'row-' || g, g * 7 from generate_series(1, 1000) g`]) await db.query('db', s);
const mix = JSON.parse(process.argv[2] ?? '{"insert":1}');
const t0 = Date.now();
const w = broker.worker(new URL('file:///work/main/test/fixtures/workers/rel-load-worker.mjs'), { workerData: { kind, id: 0, ops: 50, tables, mix, opDeadlineMillis: 3000 } });
const timer = setInterval(() => console.log('stats', JSON.stringify(broker.stats().databases.db)), 1000);
const m = await new Promise((r, j) => { w.once('message', r); w.once('error', j); });
clearInterval(timer);
console.log(Date.now() - t0, JSON.stringify({ ...m, latencies: m.latencies.length, outcomes: { ack: m.outcomes.ack.length, failed: m.outcomes.failed.length, unknown: m.outcomes.unknown } }));
await broker.close();
