import { describe, expectTypeOf, it } from 'vitest';
import type { BrokerConfig } from 'threadbroker';
import { generateTypes, type ChangeNotice, type Db, type DatabaseHandle, type Model, type Reservation, type Where } from 'threadbroker/worker';

interface User { id: number; name: string; email: string | null; version: number }

declare const db: Db;
declare const r: Reservation;
declare const config: BrokerConfig;

describe('mapper types', () => {
  it('types a model by its generic', () => {
    const users = db.model<User>('User');
    expectTypeOf(users).toEqualTypeOf<Model<User>>();
    expectTypeOf(users.get(1)).resolves.toEqualTypeOf<User | null>();
    expectTypeOf(users.find({ name: 'Ada' })).resolves.toEqualTypeOf<User[]>();
    expectTypeOf(users.insert({ name: 'Ada' })).resolves.toEqualTypeOf<User>();
    expectTypeOf(users.count()).resolves.toEqualTypeOf<number>();
    expectTypeOf(users.delete(1)).resolves.toEqualTypeOf<boolean>();
    expectTypeOf(users.in(r)).toEqualTypeOf<Model<User>>();
    expectTypeOf(users.database).toEqualTypeOf<DatabaseHandle>();
    expectTypeOf(users.onChange((n) => expectTypeOf(n).toEqualTypeOf<ChangeNotice>())).toEqualTypeOf<() => void>();
    expectTypeOf(db.model('Anything')).toEqualTypeOf<Model<Record<string, unknown>>>();
  });

  it('checks where clauses and options against the attributes', () => {
    const where: Where<User> = { name: 'Ada', email: null, id: [1, 2], version: { gte: 1, in: [1] } };
    expectTypeOf(where).toMatchTypeOf<Where<User>>();
    const users = db.model<User>('User');
    void users.find({}, { orderBy: ['name', { id: 'desc' }], limit: 1 });
    // @ts-expect-error not an attribute
    void users.find({ nope: 1 });
    // @ts-expect-error wrong value type
    void users.find({ id: 'x' });
    // @ts-expect-error not an attribute to order by
    void users.find({}, { orderBy: 'nope' });
    // @ts-expect-error not an attribute to insert
    void users.insert({ isAdmin: true });
  });

  it('generates types from a loaded config', () => {
    expectTypeOf(generateTypes(config)).toEqualTypeOf<string>();
  });
});
