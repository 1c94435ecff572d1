/**
 * Once per test run: a dedicated login on each server (`tb_broker`) so the tests can count the
 * library's sessions on the server side, apart from the test's own monitor connections.
 */
import mysql from 'mysql2/promise';
import pg from 'pg';
import { BROKER_USER, KINDS, MYSQL_URL, PG_URL } from './test-setup.js';

export default async function setup(): Promise<void> {
  if (KINDS.includes('pg')) {
    const c = new pg.Client({ connectionString: PG_URL });
    await c.connect();
    try {
      const u = BROKER_USER;
      if (!/^[a-z_][a-z0-9_]*$/.test(u)) throw new Error('TB_BROKER_USER must be a plain lower-case identifier');
      await c.query(`do $$ begin
        if not exists (select from pg_roles where rolname = '${u}') then create role ${u} login; end if;
      end $$`);
      await c.query(`grant all on schema public to ${u}`);
      await c.query(`grant all on all tables in schema public to ${u}`);
      await c.query(`grant all on all sequences in schema public to ${u}`);
      await c.query(`alter default privileges in schema public grant all on tables to ${u}`);
      await c.query(`alter default privileges in schema public grant all on sequences to ${u}`);
      // The cap oracle: an overshoot becomes a hard server error (53300) instead of passing unseen.
      await c.query(`alter role ${u} connection limit 64`);
    } finally {
      await c.end();
    }
  }
  if (KINDS.includes('mysql')) {
    const c = await mysql.createConnection(MYSQL_URL);
    try {
      const db = new URL(MYSQL_URL).pathname.slice(1) || 'test';
      for (const host of ['%', 'localhost', '127.0.0.1']) {
        await c.query(`create user if not exists '${BROKER_USER}'@'${host}'`);
        await c.query(`grant all on \`${db}\`.* to '${BROKER_USER}'@'${host}'`);
      }
    } finally {
      await c.end();
    }
  }
}
