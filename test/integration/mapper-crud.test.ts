import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Broker } from 'threadbroker';
import type { Db, Model } from 'threadbroker/worker';
import { KINDS } from '../helpers/test-setup.js';
import { TYPE_ATTRS, TYPE_TYPES, itemClass, itemDdl, mapperConfig, tagDdl, typesDdl, uniq, type TypeRow } from '../helpers/mapper-setup.js';

interface Item { id: number; name: string; qty: number | null; note: string | null; version: number }
interface Tag { id: string; label: string | null }
interface Odd { id: number; ord: string | null; sel: string | null; grp: number | null }

const BIG = 9007199254740993n; // 2^53 + 1: not a safe number
const TS = new Date('2024-01-02T03:04:05.678Z');

/** One value of every type, and what the mapper gives back for it — the same on both kinds. */
const SAMPLE = {
  i: 2147483647, b: BIG, n: '12345.6789', f: 1.25, ok: true, t: 'it\'s "quoted" \' OR 1=1 -- 日本語 ✓',
  d: '2024-02-29', ts: TS, tstz: TS, j: { a: [1, 'x', null], b: { c: true } }, bin: Buffer.from([0, 1, 2, 255]),
};
const SAMPLE_BACK = { ...SAMPLE, version: 1 };

for (const kind of KINDS) {
  describe(`${kind}: mapper CRUD`, () => {
    let broker: Broker;
    let db: Db;
    const T = { types: uniq('types'), item: uniq('item'), tag: uniq('tag'), odd: uniq('odd') };
    let items: Model<Item>;
    let types: Model<TypeRow>;

    beforeAll(async () => {
      const oddCols = { id: 'id', ord: 'order', sel: 'select', grp: 'group' };
      broker = await Broker.start(mapperConfig(kind, {
        Typed: { database: 'db', table: T.types, key: 'id', version: 'version', attributes: [...TYPE_ATTRS], types: TYPE_TYPES },
        Item: itemClass('db', T.item),
        Tag: { database: 'db', table: T.tag, key: 'id', attributes: ['id', 'label'] },
        Odd: { database: 'db', table: T.odd, key: 'id', attributes: oddCols, types: { id: 'integer', grp: 'integer' } },
      }));
      db = broker.connect();
      const q = (kind === 'pg' ? '"' : '`');
      await db.query('db', typesDdl(kind, T.types));
      await db.query('db', itemDdl(kind, T.item));
      await db.query('db', tagDdl(kind, T.tag));
      await db.query('db', `create table ${T.odd} (id integer primary key, ${q}order${q} text, ${q}select${q} text, ${q}group${q} integer)`);
      items = db.model<Item>('Item');
      types = db.model<TypeRow>('Typed');
    });
    afterAll(async () => {
      for (const t of Object.values(T)) await db.query('db', `drop table if exists ${t}`);
      await broker.close();
    });

    it('round-trips a value of every type, with the same JS types on both kinds', async () => {
      const u = await types.insert(SAMPLE);
      expect(typeof u.id === 'number' || typeof u.id === 'bigint').toBe(true);
      expect(u).toEqual({ id: u.id, ...SAMPLE_BACK });
      expect(u.b).toBe(BIG);
      expect(Buffer.isBuffer(u.bin)).toBe(true);
      const again = await types.get(u.id);
      expect(again).toEqual(u);
      expect(again).not.toBe(u); // outside a unit of work: fresh objects
    });

    it('round-trips NULL in every nullable column, and other spellings of the same values', async () => {
      const nulls = Object.fromEntries(TYPE_ATTRS.filter((a) => a !== 'id' && a !== 'version').map((a) => [a, null]));
      const u = await types.insert(nulls);
      expect(u).toEqual({ id: u.id, ...nulls, version: 1 });
      // Other spellings the value checks accept: a number for numeric, a Date for a date, ISO text for a timestamp.
      const other = { i: -5, b: 42, n: 1.5, d: new Date('2024-03-01T00:00:00Z'), ts: '2024-01-02T03:04:05.678Z', j: 'just text', ok: false };
      const v = await types.insert(other as unknown as Partial<TypeRow>);
      expect(v).toMatchObject({ i: -5, b: 42, n: '1.5000', d: '2024-03-01', ts: TS, j: 'just text', ok: false });
      expect(await types.find({ j: null, i: null })).toEqual([u]);
    });

    it('gives raw queries the same JS types on both kinds (JSON as text)', async () => {
      const u = await types.insert(SAMPLE);
      const { rows } = await types.database.query(`select * from ${T.types} where id = ${kind === 'pg' ? '$1' : '?'}`, [u.id]);
      const r = rows[0];
      expect(r).toMatchObject({ i: 2147483647, b: BIG, n: '12345.6789', f: 1.25, ok: true, d: '2024-02-29', ts: TS, tstz: TS });
      expect(JSON.parse(r['j'] as string)).toEqual(SAMPLE.j);
      expect(Buffer.from(r['bin'] as Uint8Array)).toEqual(SAMPLE.bin);
      const c = await types.database.query(`select count(*) as n from ${T.types}`);
      expect(typeof c.rows[0]['n']).toBe('number');
    });

    it('inserts with a generated key, gets null when absent, counts, saves and deletes', async () => {
      const a = await items.insert({ name: 'Ada', qty: 3 });
      expect(a).toEqual({ id: expect.any(Number), name: 'Ada', qty: 3, note: null, version: 1 });
      expect(await items.get(a.id)).toEqual(a);
      expect(await items.get(999_999)).toBeNull();
      const b = await items.save({ name: 'Bob' });
      expect(b.id).toBeGreaterThan(a.id);
      b.qty = 7;
      const saved = await items.save(b);
      expect(saved).toBe(b);
      expect(b.version).toBe(2);
      expect(await items.get(b.id)).toEqual({ ...b });
      expect(await items.count()).toBe(2);
      expect(await items.delete(a.id)).toBe(true);
      expect(await items.delete(a.id)).toBe(false);
      expect(await items.delete(b)).toBe(true);
      expect(await items.count()).toBe(0);
    });

    it('saves an unversioned class by key: insert when missing, update when present', async () => {
      const tags = db.model<Tag>('Tag');
      await tags.save({ id: 'a', label: 'first' });
      await tags.save({ id: 'a', label: 'second' });
      expect(await tags.get('a')).toEqual({ id: 'a', label: 'second' });
      await expect(tags.update({ id: 'nope', label: 'x' })).rejects.toMatchObject({ code: 'VERSION_CONFLICT' });
      expect(await tags.delete({ id: 'a' })).toBe(true);
    });

    it('finds with equality, null, lists, comparisons, like, order, limit and offset', async () => {
      for (const [name, qty, note] of [['a', 1, null], ['b', 2, 'x'], ['c', 3, 'y'], ['d', 4, null], ['e', null, 'z']] as const) {
        await items.insert({ name, qty, note });
      }
      const names = (rows: Item[]) => rows.map((r) => r.name);
      expect(names(await items.find({ name: 'b' }))).toEqual(['b']);
      expect(names(await items.find({ note: null }, { orderBy: 'name' }))).toEqual(['a', 'd']);
      expect(names(await items.find({ note: { ne: null } }, { orderBy: 'name' }))).toEqual(['b', 'c', 'e']);
      expect(names(await items.find({ name: ['a', 'c', 'zz'] }, { orderBy: 'name' }))).toEqual(['a', 'c']);
      expect(names(await items.find({ name: { in: ['d'] } }))).toEqual(['d']);
      expect(names(await items.find({ name: { notIn: ['a', 'b'] } }, { orderBy: 'name' }))).toEqual(['c', 'd', 'e']);
      expect(await items.find({ name: [] })).toEqual([]);
      expect(names(await items.find({ qty: { gt: 1, lte: 3 } }, { orderBy: { name: 'desc' } }))).toEqual(['c', 'b']);
      expect(names(await items.find({ qty: { gte: 3 } }, { orderBy: 'name' }))).toEqual(['c', 'd']);
      expect(names(await items.find({ qty: { lt: 2 } }))).toEqual(['a']);
      expect(names(await items.find({ qty: { ne: 2 } }, { orderBy: 'name' }))).toEqual(['a', 'c', 'd']);
      expect(names(await items.find({ name: { like: '_' }, qty: { eq: 4 } }))).toEqual(['d']);
      expect(names(await items.find({}, { orderBy: [{ name: 'desc' }], limit: 2, offset: 1 }))).toEqual(['d', 'c']);
      expect(names(await items.find({}, { orderBy: 'name', offset: 3 }))).toEqual(['d', 'e']);
      expect(names(await items.find({}, { orderBy: 'name', limit: 0 }))).toEqual([]);
      expect(await items.count({ qty: { gte: 2 } })).toBe(3);
      expect(await items.count({ qty: null })).toBe(1);
    });

    it('quotes reserved words as column names', async () => {
      const odd = db.model<Odd>('Odd');
      await odd.insert({ id: 1, ord: 'o', sel: 's', grp: 2 });
      expect(await odd.find({ sel: 's' }, { orderBy: ['grp', 'ord'] })).toEqual([{ id: 1, ord: 'o', sel: 's', grp: 2 }]);
      await odd.update({ id: 1, grp: 3 });
      expect(await odd.get(1)).toEqual({ id: 1, ord: 'o', sel: 's', grp: 3 });
    });

    it('gives the raw handle of the class\'s own database', async () => {
      expect(items.database.name).toBe('db');
      const { rows } = await items.database.query(`select count(*) as n from ${T.item}`);
      expect(Number(rows[0]['n'])).toBe(await items.count());
    });

    it('refuses a class not in the config with UNKNOWN_CLASS', () => {
      expect(() => db.model('Nope')).toThrow(expect.objectContaining({ code: 'UNKNOWN_CLASS' }));
      expect(() => db.model('__proto__')).toThrow(expect.objectContaining({ code: 'UNKNOWN_CLASS' }));
      expect(db.model('Item')).toBe(db.model('Item'));
    });
  });
}
