import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Broker, BrokerError } from 'threadbroker';
import { KINDS, configFor, ph } from '../helpers/test-setup.js';

for (const kind of KINDS) {
  describe(`${kind}: plain queries from the main thread`, () => {
    let broker: Broker;
    beforeAll(async () => {
      broker = await Broker.start(configFor(kind));
    });
    afterAll(async () => {
      await broker.close();
    });

    it('binds parameters with the native placeholder and returns rows as objects', async () => {
      const db = broker.connect();
      const r = await db.query('db', `select ${ph(kind, 1)} as a, ${ph(kind, 2)} as b`, ['x', 'y']);
      expect(r.rows).toEqual([{ a: 'x', b: 'y' }]);
      expect(r.rowCount).toBe(1);
      expect(r.fields.map((f) => f.name)).toEqual(['a', 'b']);
    });

    it('refuses an unknown database with UNKNOWN_DATABASE', async () => {
      const db = broker.connect();
      await expect(db.query('nope', 'select 1')).rejects.toMatchObject({ code: 'UNKNOWN_DATABASE' });
    });

    it('keeps the server fields of a database error', async () => {
      const db = broker.connect();
      const err = await db.query('db', 'select * from no_such_table_x').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(BrokerError);
      expect((err as BrokerError).code).toBe('DATABASE_ERROR');
      expect((err as BrokerError).sqlState).toBe('42' + (kind === 'pg' ? 'P01' : 'S02'));
      expect((err as BrokerError).stack).toContain('query.test.ts');
    });

    it('a failed statement carries the stack of the functions awaiting it, forwarded or not', async () => {
      const plain = await Broker.start(configFor(kind, { forwardStatements: false }));
      try {
        for (const db of [broker.connect(), plain.connect()]) {
          async function innerCaller(): Promise<unknown> {
            return db.query('db', 'select * from no_such_table_y');
          }
          async function outerCaller(): Promise<unknown> {
            return await innerCaller();
          }
          const err = (await outerCaller().catch((e: unknown) => e)) as BrokerError;
          expect(err.code).toBe('DATABASE_ERROR');
          expect(err.stack).toMatch(/^BrokerError: /);
          expect(err.stack).toContain(err.message);
          expect(err.stack).toMatch(/at (async )?outerCaller \(.*query\.test\.ts/);
          // The port's message handler is not the caller.
          expect(err.stack).not.toMatch(/port-client|onMessage/);
        }
      } finally {
        await plain.close();
      }
    });

    it('so do failed statements on a reservation, and calls on a released one', async () => {
      const db = broker.connect();
      const rsv = await db.reserve('db');
      async function inReservation(): Promise<unknown> {
        return await rsv.query('select * from no_such_table_z');
      }
      const err = (await inReservation().catch((e: unknown) => e)) as BrokerError;
      expect(err.code).toBe('DATABASE_ERROR');
      expect(err.stack).toMatch(/^BrokerError: /);
      expect(err.stack).toMatch(/at (async )?inReservation \(.*query\.test\.ts/);
      await rsv.release();
      async function afterRelease(): Promise<unknown> {
        return await rsv.query('select 1');
      }
      const expired = (await afterRelease().catch((e: unknown) => e)) as BrokerError;
      expect(expired.code).toBe('TOKEN_EXPIRED');
      expect(expired.stack).toMatch(/at (async )?afterRelease \(.*query\.test\.ts/);
    });
  });
}
