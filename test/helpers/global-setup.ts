/**
 * Once per test run: a dedicated login on each server (`tb_broker`) so the tests can count the
 * library's sessions on the server side, apart from the test's own monitor connections.
 */
import mysql from 'mysql2/promise';
import pg from 'pg';
import { KINDS, MYSQL_URL, PG_URL } from './test-setup.js';

export default async function setup(): Promise<void> {
  if (KINDS.includes('pg')) {
    const c = new pg.Client({ connectionString: PG_URL });
    await c.connect();
    try {
      await c.query(`do $$ begin
        if not exists (select from pg_roles where rolname = 'tb_broker') then create role tb_broker login; end if;
      end $$`);
      await c.query('grant all on schema public to tb_broker');
      await c.query('grant all on all tables in schema public to tb_broker');
      await c.query('alter default privileges in schema public grant all on tables to tb_broker');
      await c.query('alter default privileges in schema public grant all on sequences to tb_broker');
    } finally {
      await c.end();
    }
  }
  if (KINDS.includes('mysql')) {
    const c = await mysql.createConnection(MYSQL_URL);
    try {
      const db = new URL(MYSQL_URL).pathname.slice(1) || 'test';
      for (const host of ['%', 'localhost', '127.0.0.1']) {
        await c.query(`create user if not exists 'tb_broker'@'${host}'`);
        await c.query(`grant all on \`${db}\`.* to 'tb_broker'@'${host}'`);
      }
      await c.query('grant process on *.* to \'tb_broker\'@\'%\'');
    } finally {
      await c.end();
    }
  }
}
