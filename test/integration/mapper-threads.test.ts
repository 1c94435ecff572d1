import { once } from 'node:events';
import type { Worker } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Piscina } from 'piscina';
import { Broker, BrokerError } from 'threadbroker';
import { MAPPER_WORKER_URL, fromTaskError, runMapperTask, type ChangeNotice, type Db, type Model } from 'threadbroker/worker';
import { KINDS, brokerUrlOf } from '../helpers/test-setup.js';
import { itemClass, itemDdl, mapperConfig, uniq } from '../helpers/mapper-setup.js';

interface Item { id: number; name: string; qty: number | null; note: string | null; version: number }

const fixture = (name: string) => new URL(`../fixtures/workers/${name}`, import.meta.url);

/** Notices reported by a watcher worker, with a wait for the one a test expects. */
class Watcher {
  readonly seen: ChangeNotice[] = [];
  readonly #waiters: { pred: (n: ChangeNotice) => boolean; resolve: (n: ChangeNotice) => void }[] = [];
  constructor(readonly worker: Worker) {
    worker.on('message', (m: { t: string; notice?: ChangeNotice }) => {
      if (m.t !== 'notice' || m.notice === undefined) return;
      this.seen.push(m.notice);
      for (const w of [...this.#waiters]) if (w.pred(m.notice)) {
        this.#waiters.splice(this.#waiters.indexOf(w), 1);
        w.resolve(m.notice);
      }
    });
  }
  /** Resolves with the first notice (seen or to come) matching `pred`; fails after 5 s. */
  next(pred: (n: ChangeNotice) => boolean): Promise<ChangeNotice> {
    const hit = this.seen.find(pred);
    if (hit) return Promise.resolve(hit);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no such notice within 5 s')), 5000);
      this.#waiters.push({ pred, resolve: (n) => { clearTimeout(timer); resolve(n); } });
    });
  }
}

async function startWatcher(broker: Broker, classes: string[]): Promise<Watcher> {
  const worker = broker.worker(fixture('mapper-watcher.mjs'), { workerData: { classes } });
  const watcher = new Watcher(worker);
  const [ready] = (await once(worker, 'message')) as [{ t: string }];
  expect(ready.t).toBe('ready');
  return watcher;
}

describe.runIf(KINDS.includes('pg') && KINDS.includes('mysql'))('two classes on two databases (PostgreSQL and MariaDB) from one worker', () => {
  let broker: Broker;
  let db: Db;
  const pgTable = uniq('two_pg');
  const myTable = uniq('two_my');

  beforeAll(async () => {
    broker = await Broker.start({
      databases: { pgdb: { driver: 'pg', url: brokerUrlOf('pg'), max: 2 }, mydb: { driver: 'mysql', url: brokerUrlOf('mysql'), max: 2 } },
      classes: { OnPg: itemClass('pgdb', pgTable), OnMy: itemClass('mydb', myTable) },
    });
    db = broker.connect();
    await db.query('pgdb', itemDdl('pg', pgTable));
    await db.query('mydb', itemDdl('mysql', myTable));
  });
  afterAll(async () => {
    await db.query('pgdb', `drop table if exists ${pgTable}`);
    await db.query('mydb', `drop table if exists ${myTable}`);
    await broker.close();
  });

  it('writes each class to its own database and gives each model the right raw handle', async () => {
    const worker = broker.worker(fixture('mapper-two-databases.mjs'));
    const [out] = (await once(worker, 'message')) as [Record<string, unknown>];
    expect(out).toMatchObject({
      ok: true,
      pg: { name: 'in postgres', qty: 10, version: 2 }, my: { name: 'in mariadb', qty: 2, version: 1 },
      pgCount: 1, myCount: 1, pgDatabase: 'pgdb', myDatabase: 'mydb',
    });
    expect(out['pgServer']).toMatch(/PostgreSQL/);
    expect(out['myServer']).toMatch(/MariaDB|^\d/);
    // The rows really are where the classes say: read them with raw SQL per database.
    expect((await db.query('pgdb', `select name from ${pgTable}`)).rows).toEqual([{ name: 'in postgres' }]);
    expect((await db.query('mydb', `select name from ${myTable}`)).rows).toEqual([{ name: 'in mariadb' }]);
  });
});

for (const kind of KINDS) {
  describe(`${kind}: the generic mapper worker and change notices between threads`, () => {
    let broker: Broker;
    let db: Db;
    let items: Model<Item>;
    let pool: Piscina;
    let watcher: Watcher;
    const table = uniq('notice');

    beforeAll(async () => {
      broker = await Broker.start(mapperConfig(kind, { Item: itemClass('db', table) }));
      db = broker.connect();
      await db.query('db', itemDdl(kind, table));
      items = db.model<Item>('Item');
      pool = broker.piscina({ filename: MAPPER_WORKER_URL, minThreads: 1, maxThreads: 2 });
      watcher = await startWatcher(broker, ['Item']);
    });
    afterAll(async () => {
      watcher.worker.postMessage('stop');
      await watcher.worker.terminate();
      await pool.destroy();
      await db.query('db', `drop table if exists ${table}`);
      await broker.close();
    });

    it('serves model operations as tasks { class, op, args }', async () => {
      const a = await runMapperTask<Item>(pool, { class: 'Item', op: 'insert', args: [{ name: 'task', qty: 1 }] });
      expect(a).toEqual({ id: expect.any(Number), name: 'task', qty: 1, note: null, version: 1 });
      expect(await runMapperTask(pool, { class: 'Item', op: 'get', args: [a.id] })).toEqual(a);
      a.qty = 2;
      const b = await runMapperTask<Item>(pool, { class: 'Item', op: 'update', args: [a] });
      expect(b.version).toBe(2);
      expect(await runMapperTask(pool, { class: 'Item', op: 'find', args: [{ qty: { gte: 2 } }, { orderBy: 'id' }] })).toEqual([b]);
      expect(await runMapperTask(pool, { class: 'Item', op: 'count', args: [{}] })).toBe(1);
      expect(await runMapperTask(pool, { class: 'Item', op: 'delete', args: [b] })).toBe(true);
    });

    it('keeps the error code of a failed task', async () => {
      const a = await runMapperTask<Item>(pool, { class: 'Item', op: 'insert', args: [{ name: 'c' }] });
      await runMapperTask(pool, { class: 'Item', op: 'update', args: [{ ...a, name: 'd' }] });
      const cases: [unknown, string][] = [
        [{ class: 'Item', op: 'update', args: [a] }, 'VERSION_CONFLICT'],
        [{ class: 'Nope', op: 'get', args: [1] }, 'UNKNOWN_CLASS'],
        [{ class: 'Item', op: 'constructor', args: [] }, 'INVALID_ARGUMENT'],
        [{ class: 'Item', op: 'insert', args: [{ name: 'x', __proto__: null, evil: 1 }] }, 'INVALID_ARGUMENT'],
        [{ class: 'Item', op: 'get', args: [1], token: 'tb1.forged' }, 'TOKEN_INVALID'],
      ];
      for (const [task, code] of cases) {
        const err = await runMapperTask(pool, task as never).then(() => undefined, (e: unknown) => e);
        expect(err, code).toBeInstanceOf(BrokerError);
        expect((err as BrokerError).code).toBe(code);
      }
      // A plain pool.run() rejection carries the code in its cause.
      const raw = await pool.run({ class: 'Nope', op: 'get', args: [1] }).catch((e: unknown) => e);
      expect((raw as Error).cause).toMatchObject({ code: 'UNKNOWN_CLASS' });
      expect((fromTaskError(raw) as BrokerError).code).toBe('UNKNOWN_CLASS');
    });

    it('runs a task inside a reservation given by its token', async () => {
      const r = await db.reserve('db');
      try {
        await r.begin();
        const made = await runMapperTask<Item>(pool, { class: 'Item', op: 'insert', args: [{ name: 'in tx' }], token: r.token });
        expect(await items.in(r).get(made.id)).toEqual(made);
        expect(await items.get(made.id)).toBeNull(); // not committed yet
        await r.commit();
        expect(await items.get(made.id)).toEqual(made);
      } finally {
        await r.release();
      }
    });

    it('tells another thread of a change made in a worker', async () => {
      const a = await runMapperTask<Item>(pool, { class: 'Item', op: 'insert', args: [{ name: 'watched' }] });
      expect(await watcher.next((n) => n.key === a.id && n.kind === 'insert')).toEqual({ class: 'Item', key: a.id, version: 1, kind: 'insert' });
      a.note = 'changed';
      await runMapperTask(pool, { class: 'Item', op: 'update', args: [a] });
      expect(await watcher.next((n) => n.key === a.id && n.kind === 'update')).toEqual({ class: 'Item', key: a.id, version: 2, kind: 'update' });
      await runMapperTask(pool, { class: 'Item', op: 'delete', args: [a.id] });
      expect(await watcher.next((n) => n.key === a.id && n.kind === 'delete')).toMatchObject({ class: 'Item', key: a.id, kind: 'delete' });
      // The writing thread's own listeners hear it too.
      const heard: ChangeNotice[] = [];
      const stop = items.onChange((n) => heard.push(n));
      const b = await items.insert({ name: 'self' });
      await watcher.next((n) => n.key === b.id);
      await new Promise((r) => setImmediate(r));
      stop();
      expect(heard).toContainEqual({ class: 'Item', key: b.id, version: 1, kind: 'insert' });
    });

    it('sends notices of a transaction at commit, and none for a rollback', async () => {
      const r = await db.reserve('db');
      let inTx: Item;
      try {
        await r.begin();
        inTx = await items.in(r).insert({ name: 'pending' });
        // A later autocommitted write is noticed first: the transaction's notice waited.
        const marker = await items.insert({ name: 'marker 1' });
        await watcher.next((n) => n.key === marker.id);
        expect(watcher.seen.some((n) => n.key === inTx.id)).toBe(false);
        await r.commit();
        expect(await watcher.next((n) => n.key === inTx.id)).toMatchObject({ kind: 'insert', version: 1 });
        await r.begin();
        const dropped = await items.in(r).insert({ name: 'rolled back' });
        await r.rollback();
        const marker2 = await items.insert({ name: 'marker 2' });
        await watcher.next((n) => n.key === marker2.id);
        expect(watcher.seen.some((n) => n.key === dropped.id)).toBe(false);
      } finally {
        await r.release();
      }
    });
  });
}
