import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Broker, BrokerError } from 'threadbroker';
import type { Db, Model } from 'threadbroker/worker';
import { KINDS } from '../helpers/test-setup.js';
import { itemClass, itemDdl, mapperConfig, uniq } from '../helpers/mapper-setup.js';

interface Item { id: number; name: string; qty: number | null; note: string | null; version: number }

// eslint-disable-next-line no-control-regex -- matching raw controls is the point
const RAW_CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202e]/;

async function errorOf(p: Promise<unknown>): Promise<BrokerError> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(BrokerError);
  return err as BrokerError;
}

for (const kind of KINDS) {
  describe(`${kind}: hostile identifiers in the config`, () => {
    let broker: Broker;
    let db: Db;
    const sentinel = uniq('sentinel');

    beforeAll(async () => {
      broker = await Broker.start(mapperConfig(kind, { Item: itemClass('db', sentinel) }));
      db = broker.connect();
      await db.query('db', itemDdl(kind, sentinel));
      await db.model<Item>('Item').insert({ name: 'still here' });
    });
    afterAll(async () => {
      await db.query('db', `drop table if exists ${sentinel}`);
      await broker.close();
    });

    const limit = kind === 'pg' ? 63 : 64;
    const hostile: [string, string][] = [
      ['a double quote', `${sentinel}" ; drop table ${sentinel} --`],
      ['a backtick', `${sentinel}\`; drop table ${sentinel}; --`],
      ['a semicolon', `${sentinel};drop table ${sentinel}`],
      ['a line comment', `${sentinel}--`],
      ['a block comment', `${sentinel}/**/`],
      ['a NUL byte', `${sentinel}\u0000x`],
      ['an escape sequence', `${sentinel}\u001b[2J`],
      ['a right-to-left override', `${sentinel}\u202ex`],
      ['a space', `${sentinel} x`],
      ['a Cyrillic homoglyph', 'mаp_users'],
      ['a schema-qualified name', 'pg_catalog.pg_authid'],
      ['a name too long by one byte', 'x'.repeat(limit + 1)],
      ['a name starting with a digit', '1table'],
    ];

    for (const [what, name] of hostile) {
      it(`refuses a table name with ${what}, before any SQL runs`, async () => {
        const err = await errorOf(Broker.start(mapperConfig(kind, { Bad: { database: 'db', table: name, key: 'id', attributes: ['id'] } })));
        expect(err.code).toBe('IDENTIFIER_INVALID');
        expect(err.message).toContain('classes.Bad.table');
        expect(err.message).not.toMatch(RAW_CONTROL);
      });
      it(`refuses a column name with ${what}`, async () => {
        const err = await errorOf(Broker.start(mapperConfig(kind, { Bad: { database: 'db', table: 'map_ok', key: 'id', attributes: { id: 'id', x: name } } })));
        expect(err.code).toBe('IDENTIFIER_INVALID');
        expect(err.message).toContain('classes.Bad.attributes.x');
        expect(err.message).not.toMatch(RAW_CONTROL);
      });
    }

    it('refuses the empty name (schema) and attribute names that reach the prototype', async () => {
      expect((await errorOf(Broker.start(mapperConfig(kind, { Bad: { database: 'db', table: '', key: 'id', attributes: ['id'] } })))).code).toBe('CONFIG_INVALID');
      for (const attr of ['__proto__', 'constructor', 'prototype']) {
        const err = await errorOf(Broker.start(mapperConfig(kind, { Bad: { database: 'db', table: 't', key: 'id', attributes: ['id', attr] } })));
        expect(err.code).toBe('IDENTIFIER_INVALID');
        expect(err.message).toContain('classes.Bad.attributes[1]');
      }
    });

    it('refuses two columns that are one name on the server', async () => {
      const long = 'c'.repeat(limit);
      const cols = kind === 'pg' ? { a: `${long}x`, b: `${long}y` } : { a: 'Name', b: 'name' };
      const err = await errorOf(Broker.start(mapperConfig(kind, { Bad: { database: 'db', table: 't', key: 'a', attributes: cols } })));
      expect(err.code).toBe('IDENTIFIER_INVALID');
      if (kind === 'mysql') expect(err.message).toMatch(/classes\.Bad\.attributes\.b column "name" collides with column "Name"/);
      if (kind === 'pg') {
        // PostgreSQL compares quoted names case-sensitively: Name and name are two columns.
        const ok = await Broker.start(mapperConfig(kind, { Fine: { database: 'db', table: 't', key: 'a', attributes: { a: 'Name', b: 'name' } } }));
        await ok.close();
      }
    });

    it('leaves every table in place', async () => {
      expect(await db.model<Item>('Item').find({})).toEqual([expect.objectContaining({ name: 'still here' })]);
    });
  });

  describe(`${kind}: hostile values`, () => {
    let broker: Broker;
    let db: Db;
    let items: Model<Item>;
    const table = uniq('hostile');

    beforeAll(async () => {
      broker = await Broker.start(mapperConfig(kind, { Item: itemClass('db', table) }));
      db = broker.connect();
      await db.query('db', itemDdl(kind, table));
      items = db.model<Item>('Item');
      await items.insert({ name: 'victim', note: 'secret' });
    });
    afterAll(async () => {
      await db.query('db', `drop table if exists ${table}`);
      await broker.close();
    });

    it('binds injection text as a value', async () => {
      const evil = "' OR 1=1 --";
      expect(await items.find({ name: evil })).toEqual([]);
      expect(await items.count({ note: { like: "%' OR '1'='1" } })).toBe(0);
      const row = await items.insert({ name: evil, note: `"; drop table ${table}; --` });
      expect(await items.get(row.id)).toEqual(row);
      expect(await items.find({ name: evil })).toEqual([row]);
      expect(await items.count()).toBe(2);
      await items.delete(row.id);
    });

    const refused: [string, () => Promise<unknown>][] = [
      ['an object where a scalar is expected', () => items.insert({ name: { toString: () => 'x' } as never })],
      ['an operator object as a where value', () => items.find({ name: { password: 1 } as never })],
      ['an array as a value', () => items.insert({ name: ['a', 'b'] as never })],
      ['a nested array in a list', () => items.find({ id: [[1]] as never })],
      ['a __proto__ key', () => items.insert(JSON.parse('{"name":"x","__proto__":{"admin":true}}') as Item)],
      ['a constructor key', () => items.insert({ name: 'x', constructor: 'y' } as never)],
      ['a __proto__ key in where', () => items.find(JSON.parse('{"__proto__":{"name":"victim"}}') as never)],
      ['an unknown key (mass assignment)', () => items.insert({ name: 'x', isAdmin: true } as never)],
      ['an unknown key in update', () => items.update({ id: 1, version: 1, role: 'admin' } as never)],
      ['NaN', () => items.insert({ name: 'x', qty: NaN })],
      ['Infinity', () => items.find({ qty: { gt: -Infinity } })],
      ['an invalid Date', () => items.insert({ name: 'x', note: new Date('nope') as never })],
      ['a class instance as the record', () => items.insert(new (class { name = 'x'; })() as never)],
      ['a non-integer for an integer', () => items.insert({ name: 'x', qty: 1.5 })],
      ['an object as a key', () => items.get({ id: 1 } as never)],
      ['an unknown orderBy attribute', () => items.find({}, { orderBy: 'name; drop table x' as never })],
      ['a negative limit', () => items.find({}, { limit: -1 })],
      ['an undefined filter value (a missing parameter must not mean every row)', () => items.find({ name: undefined })],
      ['an undefined key', () => items.delete(undefined as never)],
    ];
    for (const [what, call] of refused) {
      it(`refuses ${what} with INVALID_ARGUMENT and writes nothing`, async () => {
        const err = await errorOf(call());
        expect(err.code).toBe('INVALID_ARGUMENT');
        expect(err.message).not.toMatch(RAW_CONTROL);
        expect(await items.count()).toBe(1);
        expect(({} as Record<string, unknown>)['admin']).toBeUndefined();
      });
    }

    it('reports out-of-range numbers as database errors, without crashing', async () => {
      const err = await errorOf(items.insert({ name: 'x', qty: 10n ** 30n as never }));
      expect(err.code).toBe('DATABASE_ERROR');
      expect(await items.count()).toBe(1);
    });

    it('stores a 1 MB string and text with NUL as the server allows', async () => {
      const big = 'x'.repeat(1 << 20);
      const row = await items.insert({ name: 'big', note: big });
      expect((await items.get(row.id))?.note).toBe(big);
      await items.delete(row.id);
      const nul = items.insert({ name: 'nul', note: 'a\u0000b' });
      if (kind === 'pg') {
        expect((await errorOf(nul)).code).toBe('DATABASE_ERROR'); // PostgreSQL text cannot hold NUL
      } else {
        const r = await nul;
        expect((await items.get(r.id))?.note).toBe('a\u0000b');
        await items.delete(r.id);
      }
      expect(await items.count()).toBe(1);
    });
  });
}
