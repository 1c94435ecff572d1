import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BrokerError } from '../../src/errors.js';
import { buildClassMap, type ClassMap } from '../../src/mapper/class-map.js';
import { dialectOf } from '../../src/mapper/sql-dialect.js';
import { countWhere, deleteRow, insertRow, selectByKey, selectWhere, updateRow } from '../../src/mapper/sql-builder.js';
import { fromRow, toParam } from '../../src/mapper/values.js';
import type { ClassInfo } from '../../src/transport/protocol.js';

const USER: ClassInfo = {
  name: 'User', database: 'main', table: 'users', key: 'id', version: 'version',
  attributes: { id: 'id', name: 'full_name', email: 'email', order: 'order', data: 'data', version: 'version' },
  types: { id: 'integer', data: 'json', version: 'integer' },
};
const pg = buildClassMap(USER, 'pg');
const my = buildClassMap(USER, 'mysql');

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(BrokerError);
    return (err as BrokerError).code;
  }
  throw new Error('did not throw');
}

describe('SQL dialects', () => {
  it('differ only in placeholders, quoting, RETURNING and LIMIT', () => {
    expect(dialectOf('pg').placeholder(3)).toBe('$3');
    expect(dialectOf('mysql').placeholder(3)).toBe('?');
    expect(dialectOf('pg').quoteIdent('a"b')).toBe('"a""b"');
    expect(dialectOf('mysql').quoteIdent('a`b')).toBe('`a``b`');
    expect(dialectOf('pg').returning).toBe(true);
    expect(dialectOf('mysql').returning).toBe(false);
    expect(dialectOf('mysql').limitClause(undefined, '?')).toBe(' LIMIT 18446744073709551615 OFFSET ?');
    expect(dialectOf('pg').limitClause(undefined, '$1')).toBe(' OFFSET $1');
    expect(() => dialectOf('oracle' as never)).toThrow(TypeError);
  });
});

describe('SQL builder', () => {
  it('quotes every identifier and aliases renamed columns', () => {
    expect(selectByKey(pg, 5)).toEqual({
      sql: 'SELECT "id", "full_name" AS "name", "email", "order", "data", "version" FROM "users" WHERE "id" = $1', params: [5],
    });
    expect(selectByKey(my, 5).sql).toBe('SELECT `id`, `full_name` AS `name`, `email`, `order`, `data`, `version` FROM `users` WHERE `id` = ?');
  });

  it('compiles where, order, limit and offset with bound values', () => {
    const st = selectWhere(pg, { name: 'a', email: null, id: [1, 2], order: { gte: 'x', lt: 'y', ne: null } }, { orderBy: ['name', { id: 'desc' }], limit: 5, offset: 10 });
    expect(st.sql).toBe('SELECT "id", "full_name" AS "name", "email", "order", "data", "version" FROM "users" WHERE "full_name" = $1 AND "email" IS NULL AND "id" IN ($2, $3)'
      + ' AND "order" >= $4 AND "order" < $5 AND "order" IS NOT NULL ORDER BY "full_name" ASC, "id" DESC LIMIT $6 OFFSET $7');
    expect(st.params).toEqual(['a', 1, 2, 'x', 'y', 5, 10]);
    expect(countWhere(my, { id: { notIn: [] }, name: { like: 'A%' } })).toEqual({ sql: 'SELECT COUNT(*) AS n FROM `users` WHERE `id` IS NOT NULL AND `full_name` LIKE ?', params: ['A%'] });
    expect(selectWhere(my, { id: [] }).sql).toContain('WHERE 1 = 0');
  });

  it('inserts with RETURNING on PostgreSQL, starts versions at 1, serialises JSON', () => {
    expect(insertRow(pg, { name: 'a', data: { x: [1] } })).toMatchObject({
      sql: 'INSERT INTO "users" ("full_name", "data", "version") VALUES ($1, $2, $3) RETURNING "id", "full_name" AS "name", "email", "order", "data", "version"',
      params: ['a', '{"x":[1]}', 1],
    });
    expect(insertRow(my, {}).sql).toBe('INSERT INTO `users` (`version`) VALUES (?)');
    const bare = buildClassMap({ ...USER, version: undefined }, 'pg');
    expect(insertRow(bare, {}).sql).toMatch(/^INSERT INTO "users" DEFAULT VALUES RETURNING/);
  });

  it('updates with a version check and bump, deletes with or without one', () => {
    expect(updateRow(pg, { id: 1, name: 'b', version: 3 })).toMatchObject({
      sql: 'UPDATE "users" SET "full_name" = $1, "version" = $2 WHERE "id" = $3 AND "version" = $4', params: ['b', 4, 1, 3], version: 4,
    });
    expect(updateRow(my, { id: 1, version: 2n }).params).toEqual([3n, 1, 2n]);
    expect(updateRow(pg, { id: 1, version: Number.MAX_SAFE_INTEGER }).version).toBe(BigInt(Number.MAX_SAFE_INTEGER) + 1n);
    expect(deleteRow(pg, 1, 7)).toEqual({ sql: 'DELETE FROM "users" WHERE "id" = $1 AND "version" = $2', params: [1, 7] });
    expect(deleteRow(my, 1, undefined)).toEqual({ sql: 'DELETE FROM `users` WHERE `id` = ?', params: [1] });
  });

  it('refuses keys, operators and values outside the rules', () => {
    const cases: [string, () => unknown][] = [
      ['unknown key', () => insertRow(pg, { nope: 1 })],
      ['__proto__ key', () => insertRow(pg, JSON.parse('{"__proto__": {"x": 1}}'))],
      ['constructor key', () => selectWhere(pg, { constructor: 1 })],
      ['unknown operator', () => selectWhere(pg, { name: { between: [1, 2] } })],
      ['operator __proto__', () => selectWhere(pg, { name: JSON.parse('{"__proto__": 1}') })],
      ['empty condition', () => selectWhere(pg, { name: {} })],
      ['null in a list', () => selectWhere(pg, { id: [1, null] })],
      ['object value', () => insertRow(pg, { name: { a: 1 } })],
      ['json compared', () => selectWhere(pg, { data: { gt: 1 } })],
      ['array record', () => insertRow(pg, [1, 2])],
      ['NaN', () => insertRow(pg, { email: NaN })],
      ['symbol', () => insertRow(pg, { email: Symbol('x') })],
      ['function', () => insertRow(pg, { email: () => 1 })],
      ['bigint in json', () => insertRow(pg, { data: { n: 1n } })],
      ['list too long', () => selectWhere(pg, { id: Array.from({ length: 10_001 }, (_, i) => i) })],
      ['update without key', () => updateRow(pg, { name: 'x', version: 1 })],
      ['bad direction', () => selectWhere(pg, {}, { orderBy: { name: 'sideways' as never } })],
      ['limit not integer', () => selectWhere(pg, {}, { limit: 1.5 })],
      ['key object', () => selectByKey(pg, { id: 1 })],
      ['key null', () => selectByKey(pg, null)],
      ['undefined where value', () => selectWhere(pg, { id: undefined })],
      ['undefined operator value', () => countWhere(pg, { id: { gt: undefined } })],
    ];
    for (const [what, fn] of cases) expect(codeOf(fn), what).toBe('INVALID_ARGUMENT');
  });

  it('keeps SQL text fixed per operation whatever the values (fast-check)', () => {
    const hostile = fc.oneof(
      fc.string(), fc.string({ unit: 'binary' }), fc.constantFrom("' OR 1=1 --", '"; drop table users; --', '`x`', '\u0000', '$1', '?', '%', '\\'),
      fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true }), fc.boolean(), fc.bigInt(), fc.date({ noInvalidDate: true }),
    );
    for (const map of [pg, my]) {
      const template = {
        find: selectWhere(map, { name: 'v', email: { ne: 'v', lt: 'v' }, order: ['v', 'v'] }).sql,
        insert: insertRow(map, { name: 'v', email: 'v', order: 'v' }).sql,
        update: updateRow(map, { id: 1, name: 'v', email: 'v', version: 1 }).sql,
      };
      fc.assert(fc.property(hostile, hostile, hostile, (a, b, c) => {
        const find = selectWhere(map, { name: a, email: { ne: b, lt: c }, order: [a, b] });
        expect(find.sql).toBe(template.find);
        expect(find.params).toEqual([toParam(map, 'name', a), toParam(map, 'email', b), toParam(map, 'email', c), toParam(map, 'order', a), toParam(map, 'order', b)]);
        expect(insertRow(map, { name: a, email: b, order: c }).sql).toBe(template.insert);
        expect(updateRow(map, { id: 1, name: a, email: b, version: 1 }).sql).toBe(template.update);
        if (typeof a === 'string') expect(find.params[0]).toBe(a);
      }), { numRuns: 2000 });
    }
  });
});

describe('values out of rows', () => {
  const typed: ClassMap = buildClassMap({
    name: 'T', database: 'main', table: 't', key: 'id', attributes: { id: 'id', j: 'j', b: 'b', ok: 'ok', big: 'big', d: 'd' },
    types: { id: 'integer', j: 'json', b: 'bytes', ok: 'boolean', big: 'bigint', d: 'date' },
  }, 'mysql');

  it('parses JSON text, restores Buffers, booleans, bigints and dates', () => {
    const row = fromRow<Record<string, unknown>>(typed, { id: 1, j: '{"a":1}', b: new Uint8Array([1, 2]), ok: 1, big: '9007199254740993', d: new Date('2024-01-02T00:00:00Z') });
    expect(row).toEqual({ id: 1, j: { a: 1 }, b: Buffer.from([1, 2]), ok: true, big: 9007199254740993n, d: '2024-01-02' });
    expect(Buffer.isBuffer(row['b'])).toBe(true);
    expect(fromRow<Record<string, unknown>>(typed, { id: 2, j: null, b: null, ok: null, big: '5', d: null })).toEqual({ id: 2, j: null, b: null, ok: null, big: 5, d: null });
  });
});
