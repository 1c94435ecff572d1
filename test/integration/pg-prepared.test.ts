import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Broker } from 'threadbroker';
import { KINDS, brokerUrlOf } from '../helpers/test-setup.js';

describe.runIf(KINDS.includes('pg'))('pg: statements with parameters run as named prepared statements', () => {
  let broker: Broker;
  const table = `named_stmt_${process.env.TB_BROKER_USER ?? 'tb_broker'}`;
  beforeAll(async () => {
    broker = await Broker.start({ databases: { p: { driver: 'pg', url: brokerUrlOf('pg'), max: 1 } } });
    const db = broker.connect();
    await db.query('p', `drop table if exists ${table}`);
    await db.query('p', `create table ${table} (id int primary key, v text)`);
  });
  afterAll(async () => {
    await broker.connect().query('p', `drop table if exists ${table}`);
    await broker.close();
  });

  it('prepares once per connection and reuses the statement', async () => {
    const db = broker.connect();
    await db.query('p', `insert into ${table} values ($1, $2)`, [1, 'a']);
    for (let i = 0; i < 3; i++) expect((await db.query('p', `select v from ${table} where id = $1`, [1])).rows).toEqual([{ v: 'a' }]);
    const prepared = await db.query<{ n: number }>('p', `select count(*)::int as n from pg_prepared_statements where statement = $1`, [`select v from ${table} where id = $1`]);
    expect(prepared.rows[0].n).toBe(1);
  });

  it('survives a change of the row type (DDL) outside a transaction', async () => {
    const db = broker.connect();
    expect((await db.query('p', `select * from ${table} where id = $1`, [1])).rows).toEqual([{ id: 1, v: 'a' }]);
    await db.query('p', `alter table ${table} add column w int default 7`);
    expect((await db.query('p', `select * from ${table} where id = $1`, [1])).rows).toEqual([{ id: 1, v: 'a', w: 7 }]);
  });
});
