import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Broker, BrokerError } from 'threadbroker';
import type { Db, Model } from 'threadbroker/worker';
import { KINDS, brokerUrlOf } from '../helpers/test-setup.js';
import { itemClass, itemDdl, mapperConfig, uniq } from '../helpers/mapper-setup.js';

interface Item { id: number; name: string; qty: number | null; note: string | null; version: number }

async function codeOf(p: Promise<unknown>): Promise<string> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(BrokerError);
  return (err as BrokerError).code;
}

for (const kind of KINDS) {
  describe(`${kind}: mapper versions, reservations and the identity map`, () => {
    let broker: Broker;
    let db: Db;
    let items: Model<Item>;
    const table = uniq('item');

    beforeAll(async () => {
      broker = await Broker.start(mapperConfig(kind, { Item: itemClass('db', table) }, { other: { driver: kind, url: brokerUrlOf(kind), max: 2 } }));
      db = broker.connect();
      await db.query('db', itemDdl(kind, table));
      items = db.model<Item>('Item');
    });
    afterAll(async () => {
      await db.query('db', `drop table if exists ${table}`);
      await broker.close();
    });

    it('bumps the version on update and refuses a stale object with VERSION_CONFLICT, writing nothing', async () => {
      const a = await items.insert({ name: 'a', qty: 1 });
      const stale = { ...a };
      a.qty = 2;
      await items.update(a);
      expect(a.version).toBe(2);
      stale.qty = 99;
      stale.note = 'lost update';
      expect(await codeOf(items.update(stale))).toBe('VERSION_CONFLICT');
      expect(await items.get(a.id)).toEqual({ id: a.id, name: 'a', qty: 2, note: null, version: 2 });
      expect(await codeOf(items.delete(stale))).toBe('VERSION_CONFLICT');
      expect(await items.get(a.id)).not.toBeNull();
      expect(await codeOf(items.save(stale))).toBe('VERSION_CONFLICT');
      expect(await items.delete(a)).toBe(true);
      expect(await codeOf(items.update(a))).toBe('VERSION_CONFLICT');
    });

    it('needs the version to update a versioned object', async () => {
      const a = await items.insert({ name: 'v' });
      expect(await codeOf(items.update({ id: a.id, name: 'w' }))).toBe('INVALID_ARGUMENT');
      expect((await items.get(a.id))?.name).toBe('v');
    });

    it('runs inside a transaction: commit keeps, rollback discards', async () => {
      const kept = await db.transaction('db', async (tx) => items.in(tx).insert({ name: 'kept' }));
      expect(await items.get(kept.id)).toEqual(kept);
      const r = await db.reserve('db');
      await r.begin();
      const gone = await items.in(r).insert({ name: 'gone' });
      await items.in(r).update({ ...kept, name: 'changed' });
      await r.rollback();
      await r.release();
      expect(await items.get(gone.id)).toBeNull();
      expect((await items.get(kept.id))?.name).toBe('kept');
    });

    it('keeps one instance per row inside a unit of work, fresh objects outside', async () => {
      const seed = await items.insert({ name: 'one', qty: 1 });
      expect(await items.get(seed.id)).not.toBe(await items.get(seed.id));
      await db.transaction('db', async (tx) => {
        const m = items.in(tx);
        const x = await m.get(seed.id);
        expect(x).not.toBeNull();
        expect(await m.get(seed.id)).toBe(x);
        expect(await m.get(BigInt(seed.id))).toBe(x);
        expect(await m.get(String(seed.id))).toBe(x);
        const [fromFind] = await m.find({ id: seed.id });
        expect(fromFind).toBe(x);
        expect(items.in(tx) === m).toBe(false);
        expect(await items.in(tx).get(seed.id)).toBe(x); // the unit of work is the reservation, not the model object
        x!.qty = 5; // an unsaved edit is not overwritten by a re-read
        expect((await m.find({ name: 'one' }))[0]).toBe(x);
        const other = { ...x! };
        other.note = 'via another reference';
        await m.update(other);
        expect(x!.note).toBe('via another reference');
        expect(x!.version).toBe(2);
        const fresh = await m.insert({ name: 'two' });
        expect(await m.get(fresh.id)).toBe(fresh);
        await m.delete(String(fresh.id));
        expect(await m.get(fresh.id)).toBeNull();
      });
      expect((await items.get(seed.id))?.version).toBe(2);
    });

    it('forgets the identity map after a rollback', async () => {
      const seed = await items.insert({ name: 'rb' });
      const r = await db.reserve('db');
      try {
        await r.begin();
        const first = await items.in(r).get(seed.id);
        await r.rollback();
        await r.begin();
        const second = await items.in(r).get(seed.id);
        expect(second).toEqual(first);
        expect(second).not.toBe(first);
        await r.commit();
      } finally {
        await r.release();
      }
    });

    it('refuses a reservation on another database, and things that are not reservations', async () => {
      const r = await db.reserve('other');
      try {
        expect(() => items.in(r)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
        expect(() => items.in({ database: 'db' } as never)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
      } finally {
        await r.release();
      }
    });

    it('sees a conflict between two threads of work on the same row', async () => {
      const seed = await items.insert({ name: 'race', qty: 0 });
      const [p, q] = await Promise.all([items.get(seed.id), items.get(seed.id)]);
      p!.qty = 1;
      q!.qty = 2;
      const results = await Promise.allSettled([items.update(p!), items.update(q!)]);
      expect(results.filter((x) => x.status === 'fulfilled')).toHaveLength(1);
      const failed = results.find((x) => x.status === 'rejected') as PromiseRejectedResult;
      expect((failed.reason as BrokerError).code).toBe('VERSION_CONFLICT');
      expect((await items.get(seed.id))?.version).toBe(2);
    });
  });
}
