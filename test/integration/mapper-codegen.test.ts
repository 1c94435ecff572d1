import JSON5 from 'json5';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Broker } from 'threadbroker';
import { generateTypes, introspect, readCatalog, type Db } from 'threadbroker/worker';
import { KINDS } from '../helpers/test-setup.js';
import { TYPE_TYPES, mapperConfig, typesDdl, uniq } from '../helpers/mapper-setup.js';

for (const kind of KINDS) {
  describe(`${kind}: introspection and types from the catalog`, () => {
    let broker: Broker;
    let db: Db;
    const T = { types: uniq('cg_types'), nokey: uniq('cg_nokey'), pair: uniq('cg_pair'), snake: uniq('cg_snake') };

    beforeAll(async () => {
      broker = await Broker.start(mapperConfig(kind, {}));
      db = broker.connect();
      await db.query('db', typesDdl(kind, T.types));
      await db.query('db', `create table ${T.nokey} (a integer)`);
      await db.query('db', `create table ${T.pair} (a integer not null, b integer not null, primary key (a, b))`);
      await db.query('db', `create table ${T.snake} (user_id integer primary key, full_name varchar(50) not null, created_at timestamp${kind === 'mysql' ? ' null' : ''})`);
    });
    afterAll(async () => {
      for (const t of Object.values(T)) await db.query('db', `drop table if exists ${t}`);
      await broker.close();
    });

    it('reads the catalog: columns, SQL types, nullability and the primary key', async () => {
      const catalog = await readCatalog(db, 'db', [T.types, T.snake]);
      const types = catalog['db'][T.types];
      expect(types.primaryKey).toEqual(['id']);
      expect(Object.keys(types.columns)).toEqual(['id', 'i', 'b', 'n', 'f', 'ok', 't', 'd', 'ts', 'tstz', 'j', 'bin', 'version']);
      expect(Object.fromEntries(Object.entries(types.columns).map(([c, v]) => [c, v.type]))).toEqual(TYPE_TYPES);
      expect(types.columns['id'].nullable).toBe(false);
      expect(types.columns['i'].nullable).toBe(true);
      expect(catalog['db'][T.snake].columns['full_name']).toMatchObject({ type: 'text', nullable: false });
    });

    it('writes a classes section for the tables it can map, and says why it skipped the others', async () => {
      const out = await introspect(db, 'db', { tables: Object.values(T) });
      const name = (t: string) => t.split('_').map((w) => w[0].toUpperCase() + w.slice(1)).join('');
      expect(Object.keys(out.classes).sort()).toEqual([name(T.types), name(T.snake)].sort());
      expect(out.classes[name(T.types)]).toEqual({
        database: 'db', table: T.types, key: 'id', version: 'version',
        attributes: ['id', 'i', 'b', 'n', 'f', 'ok', 't', 'd', 'ts', 'tstz', 'j', 'bin', 'version'], types: TYPE_TYPES,
      });
      expect(out.skipped).toEqual(expect.arrayContaining([
        { table: T.nokey, reason: 'no primary key' }, { table: T.pair, reason: 'composite primary key' },
      ]));
      expect(JSON5.parse(out.json5)).toEqual(out.classes);
      const camel = await introspect(db, 'db', { tables: [T.snake], camelCase: true });
      expect(camel.classes[name(T.snake)]).toMatchObject({ key: 'userId', attributes: { userId: 'user_id', fullName: 'full_name', createdAt: 'created_at' } });
    });

    it('gives a section the broker accepts and the mapper uses', async () => {
      const { classes, catalog } = await introspect(db, 'db', { tables: [T.snake] });
      const b2 = await Broker.start(mapperConfig(kind, classes as never));
      try {
        const m = b2.connect().model(Object.keys(classes)[0]);
        const row = await m.insert({ user_id: 7, full_name: 'Ada', created_at: new Date('2024-01-01T00:00:00Z') });
        expect(row).toEqual({ user_id: 7, full_name: 'Ada', created_at: new Date('2024-01-01T00:00:00Z') });
      } finally {
        await b2.close();
      }
      const ts = generateTypes({ classes }, catalog);
      expect(ts).toContain('  user_id: number;');
      expect(ts).toContain('  full_name: string;');
      expect(ts).toContain('  created_at: Date | null;');
    });
  });
}
