/**
 * RELIABILITY.md S1: 10,000 random, forged and replayed tokens (fast-check), per driver. Every one
 * is refused with a typed error — TOKEN_INVALID when forged or malformed (naming the issuer when
 * another broker issued it), TOKEN_EXPIRED when genuine but stale (after release, commit, rollback
 * or lease expiry) — and none of them reaches the database: the broker's sessions show the same
 * last statement on the server before and after, and the pool figures do not move.
 */
import { threadId } from 'node:worker_threads';
import fc from 'fast-check';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Broker, BrokerError, type Db } from 'threadbroker';
import type { DriverKind } from '../../src/config/types.js';
import { SlotTable } from '../../src/slots/slot-table.js';
import { encodeToken } from '../../src/slots/token.js';
import type { EnvData } from '../../src/transport/protocol.js';
import { BROKER_USER, KINDS, configFor, urlOf } from '../helpers/test-setup.js';

/** The table of this file, per broker login, so concurrent runs under other logins never share it. */
const TABLE = `rsv_tok_${BROKER_USER}`;

const AGENT = new URL('../fixtures/workers/rsv-agent.mjs', import.meta.url);
const ALPHABET = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.';

/** What the broker tells a thread at hello: the slot table and the MAC key (test-only peek). */
async function envOf(broker: Broker): Promise<EnvData> {
  const port = broker.port();
  const env = await new Promise<EnvData>((resolve) => {
    port.once('message', (m: { env: EnvData }) => resolve(m.env));
    port.postMessage({ t: 'hello', v: 1, thread: threadId });
  });
  port.close();
  return env;
}

/** The code an attach fails with, or ACCEPTED. */
async function outcome(db: Db, token: unknown): Promise<string> {
  try {
    await db.attach(token as string);
    return 'ACCEPTED';
  } catch (err) {
    return err instanceof BrokerError ? err.code : `NOT_A_BROKER_ERROR: ${String(err)}`;
  }
}

/** The broker login's sessions and the last statement each ran, as the server sees them. */
async function serverSnapshot(kind: DriverKind): Promise<string> {
  if (kind === 'pg') {
    const c = new pg.Client({ connectionString: urlOf('pg') });
    await c.connect();
    try {
      const r = await c.query(`select pid, query_start, state_change, xact_start, state from pg_stat_activity where usename = $1 order by pid`, [BROKER_USER]);
      return JSON.stringify(r.rows);
    } finally {
      await c.end();
    }
  }
  const c = await mysql.createConnection(urlOf('mysql'));
  try {
    const [rows] = await c.query(`select id, query_id, command from information_schema.processlist where user = ? order by id`, [BROKER_USER]);
    return JSON.stringify(rows);
  } finally {
    await c.end();
  }
}

function flipBit(token: string, bit: number): string {
  const i = token.lastIndexOf('.');
  const mac = Buffer.from(token.slice(i + 1), 'base64url');
  mac[bit >> 3] ^= 1 << (bit & 7);
  return `${token.slice(0, i + 1)}${mac.toString('base64url')}`;
}

for (const kind of KINDS) {
  describe(`${kind}: forged and replayed tokens`, () => {
    let broker: Broker;
    let other: Broker;
    let db: Db;
    let env: EnvData;
    let table: SlotTable;
    let live: string;
    const stale: string[] = [];
    const foreign: string[] = [];

    beforeAll(async () => {
      broker = await Broker.start(configFor(kind, { max: 4 }));
      db = broker.connect();
      env = await envOf(broker);
      table = new SlotTable(env.slotCounts, env.slots);
      await db.query('db', `drop table if exists ${TABLE}`);
      await db.query('db', `create table ${TABLE} (v int)`);
      // Genuine tokens made stale in each way the contract names.
      for (let i = 0; i < 5; i++) {
        const released = await db.reserve('db');
        stale.push(released.token);
        await released.release();
        for (const end of ['commit', 'rollback'] as const) {
          const r = await db.reserve('db');
          await r.begin();
          await r.query(`insert into ${TABLE} values (1)`);
          stale.push(r.token);
          await r[end]();
          await r.release();
        }
      }
      const expiring = await db.reserve('db', { idleTimeoutMillis: 60 });
      const expiredToken = expiring.token;
      for (let i = 0; i < 200 && (await outcome(db, expiredToken)) === 'ACCEPTED'; i++) await new Promise((r) => setTimeout(r, 10));
      stale.push(expiredToken);
      // Tokens of another broker (another key, another id).
      other = await Broker.start(configFor(kind, { max: 4 }));
      const odb = other.connect();
      for (let i = 0; i < 3; i++) foreign.push((await odb.reserve('db')).token);
      // One live reservation with an open transaction, used before the forgeries start.
      const r = await db.reserve('db');
      await r.begin();
      await r.query(`insert into ${TABLE} values (2)`);
      live = r.token;
    });

    afterAll(async () => {
      await other?.close();
      await broker?.close();
    });

    it('refuses 10,000 forged and replayed tokens with a typed error and no database traffic', async () => {
      expect(await outcome(db, live)).toBe('ACCEPTED');
      for (const t of stale) expect(await outcome(db, t)).toBe('TOKEN_EXPIRED');
      const before = await serverSnapshot(kind);
      const poolBefore = JSON.stringify(broker.stats());
      let runs = 0;
      const refused = (codes: string[]) => async (token: unknown) => {
        runs++;
        const got = await outcome(db, token);
        expect(codes, `token ${fc.stringify(token).slice(0, 80)} got ${got}`).toContain(got);
      };

      // 1. Random strings, random token-shaped strings with random MACs, and non-strings.
      const tokenShaped = fc.tuple(fc.nat(5), fc.integer({ min: -5, max: 100 }), fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.uint8Array({ minLength: 16, maxLength: 16 }))
        .map(([slot, gen, nonce, mac]) => `tb1.${env.brokerId}.0.${slot}.${gen}.${Buffer.from(nonce).toString('base64url')}.${Buffer.from(mac).toString('base64url')}`);
      await fc.assert(fc.asyncProperty(fc.oneof(
        fc.string({ maxLength: 200 }),
        fc.string({ unit: 'binary', maxLength: 130 }),
        fc.base64String({ maxLength: 200 }),
        fc.stringMatching(/^tb1\.[0-9a-f]{16}\.\d\.\d\.\d{1,3}\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{22}$/),
        tokenShaped,
        fc.anything(),
      ), refused(['TOKEN_INVALID'])), { numRuns: 4000 });

      // 2. One character changed or one MAC bit flipped in the live token.
      await fc.assert(fc.asyncProperty(fc.oneof(
        fc.tuple(fc.nat(live.length - 1), fc.constantFrom(...ALPHABET)).filter(([i, ch]) => live[i] !== ch).map(([i, ch]) => live.slice(0, i) + ch + live.slice(i + 1)),
        fc.nat(127).map((bit) => flipBit(live, bit)),
      ), refused(['TOKEN_INVALID'])), { numRuns: 2000 });

      // 2b. Regression: the last character of the nonce and of the MAC carries 4 unused bits; every
      //     other spelling of it is refused (they used to decode to the same bytes and be accepted).
      const B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
      for (const at of [live.length - 24, live.length - 1]) {
        for (const ch of B64URL) {
          if (ch === live[at]) continue;
          await refused(['TOKEN_INVALID'])(live.slice(0, at) + ch + live.slice(at + 1));
        }
      }

      // 3. Replays: genuine tokens whose generation is over, and validly signed tokens of any other
      //    generation of a real slot (the key never leaves the process; the test peeks at it).
      const slots = env.slotCounts[0];
      const forgedStale = fc.tuple(fc.nat(slots - 1), fc.integer({ min: -1000, max: 1000 })).filter(([slot, gen]) => table.gen(0, slot) !== gen)
        .map(([slot, gen]) => encodeToken(env.brokerId, env.tokenKey, { db: 0, slot, gen }, table.nonce(0, slot)));
      await fc.assert(fc.asyncProperty(fc.oneof(fc.constantFrom(...stale), forgedStale), refused(['TOKEN_EXPIRED'])), { numRuns: 2000 });

      // 4. Truncated, or with something appended.
      await fc.assert(fc.asyncProperty(fc.oneof(
        fc.nat(live.length - 1).map((n) => live.slice(0, n)),
        fc.string({ minLength: 1, maxLength: 8 }).map((tail) => live + tail),
        fc.string({ minLength: 1, maxLength: 8 }).map((head) => head + live),
      ), refused(['TOKEN_INVALID'])), { numRuns: 1000 });

      // 5. Not base64url: a character outside the alphabet in the nonce or the MAC.
      const tail = live.length - 45;
      await fc.assert(fc.asyncProperty(fc.tuple(fc.nat(44), fc.constantFrom('+', '/', '=', '!', ' ', '\n', '\u00e9', '\u0000')).map(([i, ch]) => {
        const at = tail + i;
        return live[at] === '.' ? `${live.slice(0, at)}${ch}${ch}${live.slice(at + 1)}` : `${live.slice(0, at)}${ch}${live.slice(at + 1)}`;
      }), refused(['TOKEN_INVALID'])), { numRuns: 500 });

      // 6. Another broker's tokens: refused, and the message names the issuer.
      await fc.assert(fc.asyncProperty(fc.constantFrom(...foreign), async (t) => {
        runs++;
        const err = await db.attach(t).then(() => undefined, (e: unknown) => e);
        expect(err).toBeInstanceOf(BrokerError);
        expect((err as BrokerError).code).toBe('TOKEN_INVALID');
        expect((err as BrokerError).message).toContain(other.id);
      }), { numRuns: 500 });

      // 7. Ten megabytes, refused before any parsing.
      const huge = 'A'.repeat(10 * 1024 * 1024);
      const t0 = performance.now();
      expect(await outcome(db, huge)).toBe('TOKEN_INVALID');
      expect(await outcome(db, live.repeat(Math.ceil(huge.length / live.length)))).toBe('TOKEN_INVALID');
      expect(performance.now() - t0).toBeLessThan(200);

      expect(runs).toBeGreaterThanOrEqual(10_000);
      // Zero database traffic: the same sessions, each with the same last statement, and the same pool figures.
      expect(await serverSnapshot(kind)).toBe(before);
      expect(JSON.stringify(broker.stats())).toBe(poolBefore);
      // The live reservation was not disturbed.
      const r = await db.attach(live);
      expect((await r.query(`select count(*) as n from ${TABLE} where v = 2`)).rows.map((x) => Number(x.n))).toEqual([1]);
      await r.rollback();
      await r.release();
    });

    it('refuses them the same way in a worker thread', async () => {
      const w = broker.worker(AGENT, { workerData: { agent: true } });
      try {
        await new Promise((r) => w.once('message', r));
        const r = await db.reserve('db');
        const token = r.token;
        const samples = fc.sample(fc.oneof(
          fc.string({ maxLength: 100 }),
          fc.nat(token.length - 1).map((n) => token.slice(0, n)),
          fc.nat(127).map((bit) => flipBit(token, bit)),
        ), 1000);
        const ask = (tokens: unknown[]) => new Promise<string[]>((resolve) => {
          w.once('message', (m: { value: string[] }) => resolve(m.value));
          w.postMessage({ id: 1, op: 'attachEach', tokens });
        });
        const codes = await ask([...samples, ...stale, foreign[0]]);
        expect(codes.slice(0, 1000).every((c) => c === 'TOKEN_INVALID')).toBe(true);
        expect(codes.slice(1000, 1000 + stale.length).every((c) => c === 'TOKEN_EXPIRED')).toBe(true);
        expect(codes.at(-1)).toBe('TOKEN_INVALID');
        expect(await ask([token])).toEqual(['ACCEPTED']);
        await r.release();
        expect(await ask([token])).toEqual(['TOKEN_EXPIRED']);
      } finally {
        await w.terminate();
      }
    });
  });
}
