/**
 * `db.model('User')`: the CRUD operations of one mapped class, on the class's own database,
 * autocommitted or inside a reservation (`model.in(r)`), with optimistic locking when the class
 * has a version column, an identity map per reservation and change notices between threads.
 * @module
 */
import type { DatabaseHandle } from '../client/db.js';
import { Reservation } from '../client/reservation.js';
import type { QueryResult } from '../client/result.js';
import { Errors } from '../errors.js';
import type { ClassMap } from './class-map.js';
import type { ChangeListener, ChangeNotice, ChangeNotices } from './change-notices.js';
import { countWhere, deleteRow, insertRow, selectByKey, selectWhere, updateRow, type FindOptions } from './sql-builder.js';
import { unitOf, type UnitOfWork } from './unit-of-work.js';
import { attributeKeys, fromRow, isPlainObject, type KeyValue } from './values.js';
import type { Where } from './where.js';

/** What a model runs its statements on: a database handle or a reservation. */
interface Runner {
  query(sql: string, params?: readonly unknown[]): Promise<QueryResult<Record<string, unknown>>>;
}

/**
 * @internal What the models of one client share.
 *
 * ```ts
 * new Model(ctx, buildClassMap(info, 'pg')); // what modelOf does
 * ```
 */
export interface ModelContext {
  readonly notices: ChangeNotices;
  readonly units: WeakMap<Reservation, UnitOfWork>;
  handle(database: string): DatabaseHandle;
}

function conflict(map: ClassMap, key: unknown, version: unknown): Error {
  const what = `${map.name} ${typeof key === 'string' ? JSON.stringify(key.slice(0, 60)) : String(key)}`;
  return Errors.versionConflict(version === undefined || version === null
    ? `${what}: no such row any more (deleted since it was read?); nothing was written`
    : `${what}: version ${String(version)} is stale (the row was changed or deleted since it was read); nothing was written`);
}

/**
 * The operations of one mapped class. Get one with `db.model<User>('User')`.
 *
 * ```ts
 * const users = db.model<User>('User');
 * const u = await users.insert({ name: 'Ada', email: 'ada@example.org' });
 * u.name = 'Ada L.';
 * await users.update(u);                      // VERSION_CONFLICT when stale; nothing written
 * await db.transaction('main', async (tx) => {
 *   const same = await users.in(tx).get(u.id); // one instance per row inside the transaction
 * });
 * ```
 */
export class Model<T extends object = Record<string, unknown>> {
  /** The class name in the config. */
  readonly name: string;
  readonly #ctx: ModelContext;
  readonly #map: ClassMap;
  readonly #runner: Runner;
  readonly #unit: UnitOfWork | undefined;

  /** @internal Built by `db.model(name)` and `model.in(reservation)`. */
  constructor(ctx: ModelContext, map: ClassMap, runner?: Runner, unit?: UnitOfWork) {
    this.name = map.name;
    this.#ctx = ctx;
    this.#map = map;
    this.#runner = runner ?? ctx.handle(map.database);
    this.#unit = unit;
  }

  /** The database the class is mapped to, for raw SQL: `users.database.query('select count(*) from users')`. */
  get database(): DatabaseHandle {
    return this.#ctx.handle(this.#map.database);
  }

  #notify(notice: ChangeNotice): void {
    if (this.#unit !== undefined) this.#unit.record(notice);
    else this.#ctx.notices.publish([notice]);
  }

  /**
   * A key as the database returns it, for identity and notices: integer text of an integer key
   * becomes a number (a bigint past 2^53), so `'5'`, `5` and `5n` name one instance.
   */
  #canon(key: unknown): unknown {
    const t = this.#map.types.get(this.#map.key);
    if ((t !== 'integer' && t !== 'bigint') || typeof key !== 'string' || !/^-?\d{1,30}$/.test(key)) return key;
    const n = Number(key);
    return Number.isSafeInteger(n) ? n : BigInt(key);
  }

  #adopt(obj: T): T {
    const key = (obj as Record<string, unknown>)[this.#map.key];
    return this.#unit === undefined ? obj : this.#unit.identity.merge(this.name, key, obj);
  }

  /**
   * The object with key `key`, or `null` when there is none. Inside a reservation, an object
   * already handed out there is returned again without a query.
   *
   * ```ts
   * const u = await users.get(42);
   * ```
   */
  async get(key: KeyValue): Promise<T | null> {
    const st = selectByKey(this.#map, key);
    const known = this.#unit?.identity.get(this.name, this.#canon(key));
    if (known !== undefined) return known as T;
    const r = await this.#runner.query(st.sql, st.params);
    return r.rows.length === 0 ? null : this.#adopt(fromRow<T>(this.#map, r.rows[0]));
  }

  /**
   * The objects matching `where` (see {@link Where}), sorted and paged by `opts`.
   *
   * ```ts
   * await users.find({ age: { gte: 18 }, email: { ne: null } }, { orderBy: 'name', limit: 10 });
   * ```
   */
  async find(where: Where<T> = {}, opts: FindOptions<T> = {}): Promise<T[]> {
    const st = selectWhere(this.#map, where, opts as FindOptions<unknown>);
    const r = await this.#runner.query(st.sql, st.params);
    return r.rows.map((row) => this.#adopt(fromRow<T>(this.#map, row)));
  }

  /** How many rows match `where`: `await users.count({ email: null })`. */
  async count(where: Where<T> = {}): Promise<number> {
    const st = countWhere(this.#map, where);
    const r = await this.#runner.query(st.sql, st.params);
    return Number(r.rows[0]?.['n'] ?? 0);
  }

  /**
   * Inserts `obj` and returns the stored row as a new object, with its generated key and the
   * values as the database keeps them (`RETURNING` on PostgreSQL; on MySQL the row is read back
   * by its `insertId`). A versioned class starts at version 1.
   *
   * ```ts
   * const u = await users.insert({ name: 'Ada' }); // u.id is set
   * ```
   */
  async insert(obj: Partial<T>): Promise<T> {
    const map = this.#map;
    const st = insertRow(map, obj);
    const r = await this.#runner.query(st.sql, st.params);
    let row = r.rows[0];
    if (!map.dialect.returning) {
      const key = st.values[map.key] ?? r.insertId;
      if (key !== undefined && key !== null) {
        const sel = selectByKey(map, key);
        row = (await this.#runner.query(sel.sql, sel.params)).rows[0];
      }
      row ??= { ...st.values };
    }
    const out = fromRow<T>(map, row);
    const rec = out as Record<string, unknown>;
    this.#unit?.identity.put(this.name, rec[map.key], out);
    this.#notify({ class: this.name, key: rec[map.key] as KeyValue, version: map.version ? (rec[map.version] as number | bigint) : null, kind: 'insert' });
    return out;
  }

  /**
   * Writes the attributes `obj` has to its row. With a version column, the row is written only
   * if its version is still `obj`'s, and the version is bumped (also on `obj`); otherwise, and
   * when the row is gone, `VERSION_CONFLICT` is thrown and nothing is written.
   *
   * ```ts
   * u.name = 'Ada L.';
   * await users.update(u); // u.version + 1
   * ```
   */
  async update<O extends Partial<T>>(obj: O): Promise<O> {
    const map = this.#map;
    const st = updateRow(map, obj);
    const r = await this.#runner.query(st.sql, st.params);
    const o = obj as Record<string, unknown>;
    if (r.rowCount === 0) throw conflict(map, st.key, map.version === undefined ? undefined : o[map.version]);
    const key = this.#canon(st.key);
    const out = (Object.isFrozen(obj) ? { ...obj } : obj) as Record<string, unknown>;
    if (map.version !== undefined) out[map.version] = st.version;
    const unit = this.#unit;
    if (unit !== undefined) {
      const known = unit.identity.get(this.name, key) as Record<string, unknown> | undefined;
      // Another reference to the same row in this unit of work sees the write too.
      if (known !== undefined && known !== out) for (const k of Object.keys(out)) known[k] = out[k];
      else if (known === undefined) unit.identity.put(this.name, key, out);
    }
    this.#notify({ class: this.name, key: key as KeyValue, version: st.version ?? null, kind: 'update' });
    return out as O;
  }

  /**
   * Inserts `obj` when it has no key (or, for a versioned class, no version yet), else updates
   * it. For a class without a version column, an update that finds no row inserts instead.
   *
   * ```ts
   * const u = await users.save({ name: 'Ada' }); // insert
   * u.name = 'Ada L.'; await users.save(u);      // update
   * ```
   */
  async save(obj: Partial<T>): Promise<T> {
    const map = this.#map;
    attributeKeys(map, obj, 'the object to save');
    const o = obj as Record<string, unknown>;
    if (o[map.key] === undefined || o[map.key] === null) return this.insert(obj);
    if (map.version !== undefined && (o[map.version] === undefined || o[map.version] === null)) return this.insert(obj);
    try {
      return (await this.update(obj)) as T;
    } catch (err) {
      if (map.version === undefined && (err as { code?: string }).code === 'VERSION_CONFLICT') return this.insert(obj);
      throw err;
    }
  }

  /**
   * Deletes by key, or by object: with a version column and an object that has a version, only
   * that version is deleted (`VERSION_CONFLICT` when stale). Resolves to whether a row was deleted.
   *
   * ```ts
   * await users.delete(42);
   * await users.delete(u); // checks u.version
   * ```
   */
  async delete(keyOrObj: KeyValue | Partial<T>): Promise<boolean> {
    const map = this.#map;
    let key: unknown = keyOrObj;
    let version: unknown;
    if (isPlainObject(keyOrObj)) {
      const o = keyOrObj as Record<string, unknown>;
      attributeKeys(map, o, 'the object to delete');
      key = o[map.key];
      if (map.version !== undefined) version = o[map.version];
    }
    const st = deleteRow(map, key, version);
    const r = await this.#runner.query(st.sql, st.params);
    if (r.rowCount === 0) {
      if (map.version !== undefined && version !== undefined && version !== null) throw conflict(map, key, version);
      return false;
    }
    const canon = this.#canon(key);
    this.#unit?.identity.remove(this.name, canon);
    this.#notify({ class: this.name, key: canon as KeyValue, version: (version as number | bigint | undefined) ?? null, kind: 'delete' });
    return true;
  }

  /**
   * The same model inside reservation `r` (a transaction from `db.transaction` or `r.begin()`):
   * every statement runs on `r`'s connection, one instance per row is kept while `r` lives, and
   * change notices wait for `r.commit()`. Keys compare by value: with the key's type declared
   * (`types: { id: 'integer' }`), `'5'`, `5` and `5n` name the same instance.
   *
   * ```ts
   * await db.transaction('main', async (tx) => { await users.in(tx).insert({ name: 'Ada' }) });
   * ```
   * @throws BrokerError `INVALID_ARGUMENT` when `r` is not a reservation on the class's database
   */
  in(r: Reservation): Model<T> {
    if (!(r instanceof Reservation)) throw Errors.invalidArgument(`${this.name}.in() needs a Reservation (from db.reserve, db.attach or db.transaction)`);
    if (r.database !== this.#map.database) {
      throw Errors.invalidArgument(`${this.name} is mapped to database ${this.#map.database}, but this reservation is on ${r.database}`);
    }
    return new Model<T>(this.#ctx, this.#map, r as unknown as Runner, unitOf(this.#ctx.units, r, this.#ctx.notices));
  }

  /**
   * Calls `fn` with a {@link ChangeNotice} for every committed change of this class made through
   * the mapper in any thread of the process — a hint with a consistency window (see
   * `ChangeNotice`): re-read the row, never trust the notice as its state. Returns the function
   * that unsubscribes.
   *
   * ```ts
   * const stop = users.onChange(({ key, kind }) => cache.delete(key));
   * ```
   */
  onChange(fn: ChangeListener): () => void {
    return this.#ctx.notices.subscribe(this.name, fn);
  }
}
