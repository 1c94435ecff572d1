/**
 * RELIABILITY.md S1, token reuse, forgery and races: 10,000+ tokens per driver — random strings,
 * token-shaped strings with random MACs, one MAC bit flipped, one character changed, validly
 * signed tokens of an old generation, genuine tokens after release / commit / rollback / lease
 * expiry, another broker's tokens, truncated, 10 MB and non-base64url ones — each refused with a
 * typed error (TOKEN_INVALID, or TOKEN_EXPIRED for genuine stale ones), none accepted, and no byte
 * reaches the database while they are tried (the proxy in front of the server counts the wire,
 * the driver spy counts statements). Two threads using one token at once are served one
 * statement at a time, each in its own order, on the one connection.
 */
import { threadId } from 'node:worker_threads';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Broker, BrokerError, type Db } from 'threadbroker';
import { SlotTable } from '../../src/slots/slot-table.js';
import { encodeToken } from '../../src/slots/token.js';
import type { EnvData } from '../../src/transport/protocol.js';
import { Agent } from '../helpers/agent.js';
import { DriverSpy } from '../helpers/driver-spy.js';
import { record } from '../helpers/figures.js';
import { relConfig, relUrl, serverOf, sessionIdSql } from '../helpers/reliability.js';
import { Admin, sleep, waitFor } from '../helpers/server-admin.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';
import { BROKER_USER, KINDS, ph } from '../helpers/test-setup.js';

const TABLE = `rel_s1_${BROKER_USER}`;

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

async function outcome(db: Db, token: unknown): Promise<string> {
  try {
    await db.attach(token as string);
    return 'ACCEPTED';
  } catch (err) {
    return err instanceof BrokerError ? err.code : `NOT_A_BROKER_ERROR: ${String(err)}`;
  }
}

function flipBit(token: string, bit: number): string {
  const i = token.lastIndexOf('.');
  const mac = Buffer.from(token.slice(i + 1), 'base64url');
  mac[bit >> 3] ^= 1 << (bit & 7);
  return `${token.slice(0, i + 1)}${mac.toString('base64url')}`;
}

for (const kind of KINDS) {
  describe(`${kind}: S1 forged, replayed and shared tokens`, () => {
    let admin: Admin;
    let proxy: TcpProxy;

    beforeAll(async () => {
      admin = new Admin(kind);
      await admin.exec(`drop table if exists ${TABLE}`, `create table ${TABLE} (id int primary key, who int not null, seq int not null, sid int not null)`);
      if (kind === 'pg') await admin.exec(`grant all on ${TABLE} to ${BROKER_USER}`);
      proxy = await TcpProxy.start(serverOf(kind));
    });

    afterAll(async () => {
      await proxy.close();
      await admin.exec(`drop table if exists ${TABLE}`);
      await admin.close();
    });

    it('refuses 10,000+ forged and replayed tokens with a typed error and no database traffic; serves two threads on one token in turn', async () => {
      const broker = await Broker.start(relConfig(kind, { url: relUrl(kind, proxy.port), max: 4 }, { housekeepingMillis: 20 }));
      const other = await Broker.start(relConfig(kind, { max: 2 }));
      const spy = new DriverSpy();
      try {
        const db = broker.connect();
        const env = await envOf(broker);
        const table = new SlotTable(env.slotCounts, env.slots);
        // Genuine tokens made stale in every way the contract names.
        const stale: string[] = [];
        for (let i = 0; i < 3; i++) {
          const released = await db.reserve('db');
          stale.push(released.token);
          await released.release();
          for (const end of ['commit', 'rollback'] as const) {
            const r = await db.reserve('db');
            await r.begin();
            await r.query('select 1');
            stale.push(r.token);
            await r[end]();
            await r.release();
          }
        }
        const expiring = await db.reserve('db', { idleTimeoutMillis: 50 });
        const expiredToken = expiring.token;
        await waitFor('the lease to expire', async () => (await outcome(db, expiredToken)) === 'TOKEN_EXPIRED', 2_000);
        stale.push(expiredToken);
        const foreign = [(await other.connect().reserve('db')).token];
        // The live reservation the forgeries are made from.
        const live = await db.reserve('db');
        await live.begin();
        const token = live.token;
        await live.query('select 1');
        await sleep(20);
        const statementsBefore = spy.statements.length;
        const wireBefore = proxy.bytes.upstream;
        const codes: Record<string, number> = {};
        let tried = 0;
        let accepted = 0;
        const expect1 = async (t: unknown, allowed: string[]): Promise<void> => {
          const got = await outcome(db, t);
          tried++;
          codes[got] = (codes[got] ?? 0) + 1;
          if (got === 'ACCEPTED') accepted++;
          expect(allowed, `token ${fc.stringify(t).slice(0, 80)} got ${got}`).toContain(got);
        };
        const tokenShaped = fc.tuple(fc.nat(5), fc.integer({ min: -5, max: 100 }), fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.uint8Array({ minLength: 16, maxLength: 16 }))
          .map(([slot, gen, nonce, mac]) => `tb1.${env.brokerId}.0.${slot}.${gen}.${Buffer.from(nonce).toString('base64url')}.${Buffer.from(mac).toString('base64url')}`);
        for (const t of fc.sample(fc.oneof(fc.string({ maxLength: 200 }), fc.base64String({ minLength: 44, maxLength: 44 }), tokenShaped, fc.anything()), 4_200)) {
          await expect1(t, ['TOKEN_INVALID']);
        }
        for (let bit = 0; bit < 128; bit++) await expect1(flipBit(token, bit), ['TOKEN_INVALID']);
        const ALPHABET = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.';
        for (const [i, ch] of fc.sample(fc.tuple(fc.nat(token.length - 1), fc.constantFrom(...ALPHABET)).filter(([i, ch]) => token[i] !== ch), 2_000)) {
          await expect1(token.slice(0, i) + ch + token.slice(i + 1), ['TOKEN_INVALID']);
        }
        const slots = env.slotCounts[0];
        for (const [slot, gen] of fc.sample(fc.tuple(fc.nat(slots - 1), fc.integer({ min: -1000, max: 1000 })).filter(([s, g]) => table.gen(0, s) !== g), 2_000)) {
          await expect1(encodeToken(env.brokerId, env.tokenKey, { db: 0, slot, gen }, table.nonce(0, slot)), ['TOKEN_EXPIRED']);
        }
        for (const t of stale) await expect1(t, ['TOKEN_EXPIRED']);
        for (let n = 0; n < token.length; n++) await expect1(token.slice(0, n), ['TOKEN_INVALID']);
        for (const t of fc.sample(fc.string({ minLength: 1, maxLength: 8 }).map((tail) => token + tail), 500)) await expect1(t, ['TOKEN_INVALID']);
        for (const t of fc.sample(fc.tuple(fc.nat(44), fc.constantFrom('+', '/', '=', '!', ' ', '\n', '\u00e9', '\u0000')).map(([i, ch]) => token.slice(0, token.length - 45 + i) + ch + token.slice(token.length - 44 + i)), 500)) {
          await expect1(t, ['TOKEN_INVALID']);
        }
        for (let i = 0; i < 200; i++) await expect1(foreign[0], ['TOKEN_INVALID']);
        const t0 = performance.now();
        await expect1('A'.repeat(10 * 1024 * 1024), ['TOKEN_INVALID']);
        const hugeMillis = performance.now() - t0;
        // The same in a worker thread.
        const agent = Agent.spawn(broker);
        await agent.ready;
        const inWorker = await agent.call<string[]>('attachEach', { tokens: [...fc.sample(fc.nat(127).map((b) => flipBit(token, b)), 500), ...stale] });
        for (const c of inWorker) {
          tried++;
          codes[c] = (codes[c] ?? 0) + 1;
          if (c === 'ACCEPTED') accepted++;
        }
        expect(inWorker.slice(0, 500).every((c) => c === 'TOKEN_INVALID')).toBe(true);
        expect(inWorker.slice(500).every((c) => c === 'TOKEN_EXPIRED')).toBe(true);
        const statements = spy.statements.length - statementsBefore;
        const wire = proxy.bytes.upstream - wireBefore;

        // Two threads on one token at once: one statement at a time, on one connection, each thread in its own order.
        const p = (i: number): string => ph(kind, i);
        const sidOf = kind === 'pg' ? 'pg_backend_pid()' : 'connection_id()';
        const second = Agent.spawn(broker);
        await second.ready;
        await agent.call('attach', { key: 't', token });
        await second.call('attach', { key: 't', token });
        const runs = [agent, second].map((a, who) => Promise.all(Array.from({ length: 25 }, (_, seq) =>
          a.call('query', { key: 't', sql: `insert into ${TABLE} (id, who, seq, sid) values (${p(1)}, ${p(2)}, ${p(3)}, ${sidOf})`, params: [who * 1000 + seq, who, seq] }))));
        await Promise.all(runs);
        const rows = (await live.query<{ who: unknown; seq: unknown; sid: unknown }>(`select who, seq, sid from ${TABLE} order by id`)).rows;
        const sids = new Set(rows.map((r) => Number(r.sid)));
        const mySid = Number((await live.query<{ sid: unknown }>(sessionIdSql(kind))).rows[0].sid);
        await live.rollback();
        await live.release();
        await agent.worker?.terminate();
        await second.worker?.terminate();
        const figures = { tried, accepted, codes, statementsDuringForgery: statements, wireBytesDuringForgery: wire, hugeTokenMillis: Math.round(hugeMillis * 10) / 10, sharedTokenStatements: rows.length, sharedTokenSessions: sids.size };
        record('S1', kind, figures);
        console.log(`[S1] ${kind}: ${JSON.stringify(figures)}`);
        expect(tried).toBeGreaterThanOrEqual(10_000);
        expect(accepted).toBe(0);
        expect(statements).toBe(0);
        expect(wire).toBe(0);
        expect(hugeMillis).toBeLessThan(200);
        expect(rows).toHaveLength(50);
        expect([...sids]).toEqual([mySid]);
      } finally {
        spy.restore();
        await other.close();
        await broker.close();
      }
    });
  });
}
