/**
 * One-time server setup, as the admin user: the `tb_bench` login the broker connects as (so its
 * sessions can be counted apart from everything else on the server), and the 100,000-row table.
 * Idempotent: the table is rebuilt only when it is missing or does not hold exactly 100,000 rows.
 */
import pg from 'pg';
import mysql from 'mysql2/promise';
import { TABLE, TABLE_ROWS } from './workloads.mjs';

export const BENCH_USER = 'tb_bench';
/** The login of everything else the harness runs against the server (own pools, pgbench, mysqlslap). */
export const DIRECT_USER = 'tb_bench_direct';

function withUser(adminUrl, user) {
  const u = new URL(adminUrl);
  u.username = user;
  u.password = '';
  return u.href;
}

/** The URL the broker connects with: the admin URL with the `tb_bench` login. */
export function brokerUrl(adminUrl) {
  return withUser(adminUrl, BENCH_USER);
}

/** The URL of the status-quo pools and of the ceiling tools: the `tb_bench_direct` login. */
export function directUrl(adminUrl) {
  return withUser(adminUrl, DIRECT_USER);
}

/** SQL (run as admin) listing the broker's sessions on the server by client TCP port (pg) or host:port (MySQL). */
export function brokerSessionsSql(driver) {
  return driver === 'pg'
    ? `select client_port as port from pg_stat_activity where usename = '${BENCH_USER}' and application_name = 'threadbroker'`
    : `select host from information_schema.processlist where user = '${BENCH_USER}'`;
}

/** Creates the login and the table when needed; returns the server's version string. */
export async function prepareServer(driver, adminUrl, log) {
  return driver === 'pg' ? preparePg(adminUrl, log) : prepareMysql(adminUrl, log);
}

async function preparePg(adminUrl, log) {
  const c = new pg.Client({ connectionString: adminUrl, application_name: 'tb_bench_setup' });
  await c.connect();
  try {
    for (const user of [BENCH_USER, DIRECT_USER]) {
      await c.query(`do $$ begin
        if not exists (select from pg_roles where rolname = '${user}') then create role ${user} login; end if;
      end $$`);
    }
    await c.query(`create table if not exists ${TABLE} (
      id integer primary key, name varchar(64) not null, category integer not null,
      price double precision not null, qty integer not null, created_at timestamp not null)`);
    const n = Number((await c.query(`select count(*)::int as n from ${TABLE}`)).rows[0].n);
    if (n !== TABLE_ROWS) {
      log(`pg: filling ${TABLE} with ${TABLE_ROWS} rows (had ${n})`);
      await c.query('begin');
      await c.query(`truncate ${TABLE}`);
      await c.query(`insert into ${TABLE} select g, 'item-' || g, g % 50, (g % 1000) / 10.0 + 0.99, g % 97,
        timestamp '2024-01-01' + g * interval '1 minute' from generate_series(1, ${TABLE_ROWS}) g`);
      await c.query('commit');
      await c.query(`vacuum analyze ${TABLE}`);
    }
    await c.query(`grant select on ${TABLE} to ${BENCH_USER}, ${DIRECT_USER}`);
    // The session sampler runs as tb_bench_direct: without this pg hides other logins' client ports.
    await c.query(`grant pg_read_all_stats to ${DIRECT_USER}`);
    return (await c.query('show server_version')).rows[0].server_version;
  } finally {
    await c.end();
  }
}

async function prepareMysql(adminUrl, log) {
  const c = await mysql.createConnection(adminUrl);
  try {
    const db = new URL(adminUrl).pathname.slice(1) || 'test';
    for (const user of [BENCH_USER, DIRECT_USER]) {
      for (const host of ['%', 'localhost', '127.0.0.1']) {
        await c.query(`create user if not exists '${user}'@'${host}'`);
        await c.query(`grant select on \`${db}\`.* to '${user}'@'${host}'`);
      }
    }
    await c.query(`create table if not exists ${TABLE} (
      id int primary key, name varchar(64) not null, category int not null,
      price double not null, qty int not null, created_at datetime not null) engine=InnoDB`);
    const [[{ n }]] = await c.query(`select count(*) as n from ${TABLE}`);
    if (Number(n) !== TABLE_ROWS) {
      log(`mysql: filling ${TABLE} with ${TABLE_ROWS} rows (had ${n})`);
      await c.query(`truncate table ${TABLE}`);
      const base = Date.UTC(2024, 0, 1);
      for (let lo = 1; lo <= TABLE_ROWS; lo += 2000) {
        const rows = [];
        for (let g = lo; g < lo + 2000 && g <= TABLE_ROWS; g++) {
          rows.push([g, `item-${g}`, g % 50, (g % 1000) / 10 + 0.99, g % 97, new Date(base + g * 60_000).toISOString().slice(0, 19).replace('T', ' ')]);
        }
        await c.query(`insert into ${TABLE} (id, name, category, price, qty, created_at) values ?`, [rows]);
      }
      await c.query(`analyze table ${TABLE}`);
    }
    const [[{ v }]] = await c.query('select version() as v');
    return v;
  } finally {
    await c.end();
  }
}
