/**
 * RELIABILITY.md S3, hostile values and payloads (fast-check, 10,000 per driver): injection text,
 * objects and arrays where a scalar is expected (`{"password":1}`, mysql2 object expansion),
 * unknown keys (mass assignment), `__proto__` and `constructor` keys, NUL inside text, NaN,
 * Infinity, bigints out of range, 1 MB strings. Values are only ever bound parameters: a driver spy
 * sees the same SQL text for every insert and every raw statement, whatever the values. Bad
 * shapes get typed errors (INVALID_ARGUMENT; DATABASE_ERROR for what only the server refuses);
 * nothing crashes; no prototype is polluted; only accepted rows are written.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Broker, BrokerError } from 'threadbroker';
import { DriverSpy } from '../helpers/driver-spy.js';
import { record } from '../helpers/figures.js';
import { itemClass, itemDdl, uniq } from '../helpers/mapper-setup.js';
import { relConfig } from '../helpers/reliability.js';
import { KINDS, ph } from '../helpers/test-setup.js';

const PAYLOADS = 10_000;

const INJECTIONS = ["' OR 1=1 --", '"; drop table x; --', '`; drop table x; --', "\\'; select 1; --", '$1', '?', '%s', '{"password":1}', '/*', '*/', 'a\u0000b', '\u202e', "'||pg_sleep(1)||'"];

function hostileValue(): fc.Arbitrary<unknown> {
  return fc.oneof(
    fc.constantFrom(...INJECTIONS),
    fc.string({ maxLength: 60 }),
    fc.string({ unit: 'binary', maxLength: 60 }),
    fc.integer(),
    fc.double(),
    fc.constantFrom(NaN, Infinity, -Infinity, 2 ** 31, -(2 ** 31) - 1, Number.MAX_SAFE_INTEGER, 2 ** 53 + 2),
    fc.bigInt({ min: -(10n ** 30n), max: 10n ** 30n }),
    fc.constant(null),
    fc.boolean(),
    fc.constantFrom({ password: 1 }, ['a', 'b'], [[1]], { toString: () => 'x' }, new Date('nope'), new Date(0), Buffer.from('x')),
    fc.dictionary(fc.string({ maxLength: 8 }), fc.string({ maxLength: 8 }), { maxKeys: 3 }),
    fc.constant('x'.repeat(1 << 20)),
  );
}

/** A record to insert: the three attributes always present, sometimes a key outside the config. */
function payload(): fc.Arbitrary<Record<string, unknown>> {
  return fc.tuple(hostileValue(), hostileValue(), hostileValue(), fc.option(fc.constantFrom('isAdmin', '__proto__', 'constructor', 'prototype', 'id; drop', 'version'), { freq: 4 }))
    .map(([name, qty, note, extra]) => {
      const rec: Record<string, unknown> = { name, qty, note };
      if (extra === '__proto__') return JSON.parse(`{"__proto__":{"admin":true},"name":${JSON.stringify(typeof name === 'string' ? name : 'x')}}`) as Record<string, unknown>;
      if (extra !== null) rec[extra] = 'x';
      return rec;
    });
}

for (const kind of KINDS) {
  describe(`${kind}: S3 hostile values and payloads`, () => {
    let broker: Broker;
    const table = uniq('rel_s3');

    beforeAll(async () => {
      broker = await Broker.start({ ...relConfig(kind, { max: 4 }), classes: { Item: itemClass('db', table) } });
      await broker.connect().query('db', itemDdl(kind, table));
    });

    afterAll(async () => {
      await broker.connect().query('db', `drop table if exists ${table}`);
      await broker.close();
    });

    it(`${PAYLOADS} payloads through the mapper and raw statements: one SQL text per operation, typed errors only`, async () => {
      const db = broker.connect();
      const items = db.model<{ id: number; name: string; qty: number | null; note: string | null; version: number }>('Item');
      const spy = new DriverSpy();
      const codes: Record<string, number> = {};
      let written = 0;
      let other = 0;
      let rawFrom = 0;
      try {
        const samples = fc.sample(payload(), PAYLOADS);
        for (const rec of samples) {
          const code = await items.insert(rec as never).then(() => 'OK', (e: unknown) => (e instanceof BrokerError ? e.code : `NOT_A_BROKER_ERROR: ${String(e)}`));
          codes[code] = (codes[code] ?? 0) + 1;
          if (code === 'OK') written++;
          else if (code !== 'INVALID_ARGUMENT' && code !== 'DATABASE_ERROR') other++;
        }
        // Raw statements: the value is a parameter whatever it is.
        rawFrom = spy.statements.length;
        const raw = `select ${ph(kind, 1)} as v`;
        for (const v of fc.sample(hostileValue(), 2_000)) {
          const code = await db.query('db', raw, [v]).then(() => 'OK', (e: unknown) => (e instanceof BrokerError ? e.code : `NOT_A_BROKER_ERROR: ${String(e)}`));
          codes[`raw:${code}`] = (codes[`raw:${code}`] ?? 0) + 1;
          if (code !== 'OK' && code !== 'INVALID_ARGUMENT' && code !== 'DATABASE_ERROR') other++;
        }
      } finally {
        spy.restore();
      }
      const inserts = spy.statements.filter((s) => /^INSERT INTO/.test(s.sql));
      const insertTexts = new Set(inserts.map((s) => s.sql));
      const rawTexts = new Set(spy.statements.slice(rawFrom).map((s) => s.sql));
      const deviations = Math.max(0, insertTexts.size - 1) + Math.max(0, rawTexts.size - 1);
      const rows = await items.count();
      const polluted = ({} as Record<string, unknown>).admin !== undefined || Object.keys(Object.prototype).length > 0;
      const figures = { payloads: PAYLOADS, rawStatements: 2_000, codes, written, rowsInTable: rows, sqlTextDeviations: deviations, distinctInsertTexts: insertTexts.size, otherErrors: other, polluted };
      record('S3', kind, figures);
      console.log(`[S3] ${kind}: ${JSON.stringify(figures)}`);
      expect(other).toBe(0);
      expect(insertTexts.size).toBe(1);
      expect(rawTexts.size).toBe(1);
      expect(rows).toBe(written);
      expect(polluted).toBe(false);
      // Every value reached the server as a parameter, never as SQL: the one text has placeholders only.
      expect([...insertTexts][0]).not.toMatch(/'|OR 1=1|drop/i);
    });
  });
}
