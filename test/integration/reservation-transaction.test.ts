/**
 * Issue 3 item 7: `db.transaction(database, fn, opts)` commits when `fn` returns, rolls back when it
 * throws, and retries a bounded number of times on serialization failures and deadlocks — provoked
 * for real: two serializable transactions updating one row on PostgreSQL (40001), two transactions
 * locking two rows in opposite order on MariaDB (1213). Interleavings are driven by latches.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Broker, BrokerError, type Db } from 'threadbroker';
import { BROKER_USER, KINDS, configFor } from '../helpers/test-setup.js';

/** The table of this file, per broker login, so concurrent runs under other logins never share it. */
const TABLE = `rsv_acct_${BROKER_USER}`;

/** A one-shot gate: `open()` once, `wait` resolves from then on. */
function latch(): { open: () => void; wait: Promise<void> } {
  let open!: () => void;
  const wait = new Promise<void>((r) => {
    open = r;
  });
  return { open, wait };
}

for (const kind of KINDS) {
  describe(`${kind}: db.transaction`, () => {
    let broker: Broker;
    let db: Db;
    const forced = kind === 'pg'
      ? `do $$ begin raise exception 'forced serialization failure' using errcode = '40001'; end $$`
      : `signal sqlstate '40001' set mysql_errno = 1213, message_text = 'forced deadlock'`;

    beforeAll(async () => {
      broker = await Broker.start(configFor(kind, { max: 4 }));
      db = broker.connect();
      await db.query('db', `drop table if exists ${TABLE}`);
      await db.query('db', `create table ${TABLE} (id int primary key, v int not null)`);
    });

    beforeEach(async () => {
      await db.query('db', `delete from ${TABLE}`);
      await db.query('db', `insert into ${TABLE} values (1, 0), (2, 0)`);
    });

    afterAll(async () => {
      await broker.close();
    });

    const values = async () => (await db.query<{ v: number }>('db', `select v from ${TABLE} order by id`)).rows.map((r) => Number(r.v));

    it('commits when fn returns and hands back its value', async () => {
      const out = await db.transaction('db', async (tx) => {
        await tx.query(`update ${TABLE} set v = 5 where id = 1`);
        expect(await values()).toEqual([0, 0]); // not visible outside before the commit
        return 'done';
      });
      expect(out).toBe('done');
      expect(await values()).toEqual([5, 0]);
      expect(broker.stats().databases.db.reserved).toBe(0);
    });

    it('rolls back when fn throws and rethrows the same error', async () => {
      const boom = new Error('boom');
      const err = await db.transaction('db', async (tx) => {
        await tx.query(`update ${TABLE} set v = 7 where id = 1`);
        throw boom;
      }).catch((e: unknown) => e);
      expect(err).toBe(boom);
      expect(await values()).toEqual([0, 0]);
      expect(broker.stats().databases.db.reserved).toBe(0);
    });

    it('does not retry other errors, even with retries', async () => {
      let attempts = 0;
      const err = await db.transaction('db', async (tx) => {
        attempts++;
        await tx.query(`update ${TABLE} set v = 1 where id = 1`);
        await tx.query(`insert into ${TABLE} values (2, 0)`); // duplicate key
      }, { retries: 3 }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(BrokerError);
      expect((err as BrokerError).code).toBe('DATABASE_ERROR');
      expect(attempts).toBe(1);
      expect(await values()).toEqual([0, 0]);
    });

    it('retries a bounded number of times, then gives up with the last error', async () => {
      let attempts = 0;
      const err = await db.transaction('db', async (tx) => {
        attempts++;
        await tx.query(`update ${TABLE} set v = v + 1 where id = 1`);
        await tx.query(forced);
      }, { retries: 2 }).catch((e: unknown) => e);
      expect(attempts).toBe(3);
      expect(err).toBeInstanceOf(BrokerError);
      expect((err as BrokerError).sqlState).toBe('40001');
      expect(await values()).toEqual([0, 0]);
      expect(broker.stats().databases.db.reserved).toBe(0);
      await expect(db.transaction('db', async () => undefined, { retries: -1 })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
      await expect(db.transaction('db', async () => undefined, { retries: 101 })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    });

    if (kind === 'pg') {
      /** Two serializable transactions read row 1; A updates and commits; then B updates: 40001. */
      const conflict = async (retries: number) => {
        const aRead = latch();
        const bRead = latch();
        const aDone = latch();
        let attemptsB = 0;
        const a = db.transaction('db', async (tx) => {
          await tx.query(`select v from ${TABLE} where id = 1`);
          aRead.open();
          await bRead.wait;
          await tx.query(`update ${TABLE} set v = v + 1 where id = 1`);
        }, { isolation: 'serializable' }).finally(aDone.open);
        const b = db.transaction('db', async (tx) => {
          attemptsB++;
          await tx.query(`select v from ${TABLE} where id = 1`);
          if (attemptsB === 1) {
            await aRead.wait;
            bRead.open();
            await aDone.wait;
          }
          await tx.query(`update ${TABLE} set v = v + 10 where id = 1`);
        }, { isolation: 'serializable', retries });
        const [ra, rb] = await Promise.allSettled([a, b]);
        return { ra, rb, attemptsB };
      };

      it('retries a real serialization failure (40001) and then succeeds', async () => {
        const { ra, rb, attemptsB } = await conflict(3);
        expect(ra.status).toBe('fulfilled');
        expect(rb.status).toBe('fulfilled');
        expect(attemptsB).toBe(2);
        expect(await values()).toEqual([11, 0]);
        expect(broker.stats().databases.db.reserved).toBe(0);
      });

      it('surfaces the serialization failure without retries, and keeps nothing of it', async () => {
        const { rb, attemptsB } = await conflict(0);
        expect(rb.status).toBe('rejected');
        expect((rb as PromiseRejectedResult).reason).toMatchObject({ code: 'DATABASE_ERROR', sqlState: '40001' });
        expect(attemptsB).toBe(1);
        expect(await values()).toEqual([1, 0]);
      });
    } else {
      it('retries a real deadlock (1213) and then both transactions succeed', async () => {
        const aLocked = latch();
        const bLocked = latch();
        let attempts = 0;
        const attemptsOf = { a: 0, b: 0 };
        const run = (name: 'a' | 'b', first: number, second: number, add: number, mine: { open: () => void }, theirs: Promise<void>) =>
          db.transaction('db', async (tx) => {
            attempts++;
            attemptsOf[name]++;
            await tx.query(`update ${TABLE} set v = v + ${add} where id = ${first}`);
            if (attemptsOf[name] === 1) {
              mine.open();
              await theirs;
            }
            await tx.query(`update ${TABLE} set v = v + ${add} where id = ${second}`);
          }, { retries: 2 });
        const results = await Promise.allSettled([run('a', 1, 2, 1, aLocked, bLocked.wait), run('b', 2, 1, 10, bLocked, aLocked.wait)]);
        expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled']);
        expect(attempts).toBe(3); // exactly one victim, retried once
        expect(await values()).toEqual([11, 11]);
        expect(broker.stats().databases.db.reserved).toBe(0);
      });
    }
  });
}
