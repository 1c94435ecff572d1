/**
 * RELIABILITY.md F6, network faults through our proxy, six toxics per driver:
 *
 * - latency 200 ± 50 ms both ways: no spurious timeout below the configured deadline;
 * - a 10 s black hole (no FIN, no RST): every statement ends at its deadline (QUERY_TIMEOUT) or
 *   its acquire deadline, its connection is destroyed, not reused; TCP keepalive is on; service
 *   returns once the hole closes;
 * - RST: in-flight statements fail at once with a typed error; nothing else does;
 * - a cut after N bytes in the middle of a result: an error, never a short result as success;
 * - a 1-byte slicer: results identical to those of a direct connection;
 * - down: refused connections give bounded, typed errors; service returns by itself once up.
 * Error budget (pgdog's style): errors only where the fault forces them.
 */
import { execFileSync } from 'node:child_process';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Broker, BrokerError } from 'threadbroker';
import { record } from '../helpers/figures.js';
import { codeOf, relConfig, relUrl, rowsSql, serverOf, sessionIdSql, sleepSql } from '../helpers/reliability.js';
import { Admin, sleep, waitFor } from '../helpers/server-admin.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';
import { KINDS } from '../helpers/test-setup.js';

/** A statement with values of many types, the same on both kinds' wire paths. */
function typesSql(kind: string): string {
  return kind === 'pg'
    ? `select 1::int as i, 9007199254740993::bigint as big, 3.25::float8 as f, 'é ü 中文 😀'::text as t, true as b,
        '2024-02-29'::date as d, '2024-02-29 12:34:56.789'::timestamp as ts, '{"a":[1,2]}'::jsonb as j,
        decode('00ff10', 'hex') as bin, null::text as n, repeat('ab', 5000) as long`
    : `select 1 as i, cast(9007199254740993 as signed) as big, 3.25e0 as f, 'é ü 中文 😀' as t, true as b,
        cast('2024-02-29' as date) as d, cast('2024-02-29 12:34:56.789' as datetime(3)) as ts, '{"a":[1,2]}' as j,
        unhex('00ff10') as bin, null as n, repeat('ab', 5000) as \`long\``;
}

for (const kind of KINDS) {
  describe(`${kind}: F6 network faults through the proxy`, () => {
    let admin: Admin;
    let proxy: TcpProxy;
    let broker: Broker | undefined;
    const toxics: string[] = [];

    beforeAll(async () => {
      admin = new Admin(kind);
      proxy = await TcpProxy.start(serverOf(kind));
      await waitFor('no broker sessions left', async () => (await admin.sessions()) === 0, 15_000);
    });

    afterEach(async () => {
      proxy.clear();
      await broker?.close();
      broker = undefined;
    });

    afterAll(async () => {
      await proxy.close();
      await admin.close();
      record('F6', kind, { toxics });
    });

    const start = (db: Record<string, unknown>): Promise<Broker> =>
      Broker.start(relConfig(kind, { url: relUrl(kind, proxy.port), max: 4, ...db }));

    it('latency 200 ± 50 ms both ways: no spurious timeout below the deadline', async () => {
      broker = await start({ queryTimeoutMillis: 3_000, connectTimeoutMillis: 10_000, acquireTimeoutMillis: 15_000 });
      const db = broker.connect();
      proxy.latency(200, 50, 'both');
      const took: number[] = [];
      const codes: string[] = [];
      for (let round = 0; round < 5; round++) {
        await Promise.all(Array.from({ length: 5 }, async () => {
          const t0 = performance.now();
          codes.push(await codeOf(db.query('db', rowsSql(kind, 1000, 20))));
          took.push(performance.now() - t0);
        }));
      }
      const errors = codes.filter((c) => c !== 'OK').length;
      record('F6', kind, { toxic: 'latency', queries: codes.length, errors, minMillis: Math.round(Math.min(...took)), maxMillis: Math.round(Math.max(...took)) });
      expect(errors).toBe(0);
      expect(Math.min(...took)).toBeGreaterThanOrEqual(300);
      toxics.push('latency');
    });

    it('a 10 s black hole: every statement ends within its deadline, its connection is destroyed, keepalive is on, service returns', async () => {
      const Q = 1_000;
      const A = 1_500;
      broker = await start({ queryTimeoutMillis: Q, connectTimeoutMillis: 1_000, acquireTimeoutMillis: A });
      const db = broker.connect();
      await Promise.all(Array.from({ length: 4 }, () => db.query('db', sleepSql(kind, 0.05))));
      const sidsBefore = new Set<number>();
      for (let i = 0; i < 4; i++) sidsBefore.add(Number((await db.query<{ sid: unknown }>('db', sessionIdSql(kind))).rows[0].sid));
      // TCP keepalive on the broker's sockets (ss shows the keepalive timer).
      const ss = execFileSync('ss', ['-tnoep', 'state', 'established', `( dport = :${proxy.port} )`]).toString();
      const mine = ss.split('\n').filter((l) => l.includes(`pid=${process.pid},`));
      expect(mine.length).toBeGreaterThan(0);
      for (const l of mine) expect(l).toContain('timer:(keepalive');
      const holedConns = proxy.connections();
      proxy.blackhole(true);
      const h0 = Date.now();
      const outcomes: { code: string; took: number }[] = [];
      while (Date.now() - h0 < 10_000) {
        const t0 = performance.now();
        const code = await codeOf(db.query('db', 'select 1'));
        outcomes.push({ code, took: performance.now() - t0 });
      }
      proxy.blackhole(false);
      const l0 = performance.now();
      await waitFor('service back after the black hole', async () => (await codeOf(db.query('db', 'select 1'))) === 'OK', 10_000, 20);
      const recovery = performance.now() - l0;
      // Every statement that was on a black-holed connection closed it: none of them is reused.
      await waitFor('the black-holed connections closed by the broker', () => holedConns.every((c) => c.closed), 5_000);
      const sidsAfter = new Set<number>();
      for (let i = 0; i < 4; i++) sidsAfter.add(Number((await db.query<{ sid: unknown }>('db', sessionIdSql(kind))).rows[0].sid));
      const reused = [...sidsAfter].filter((s) => sidsBefore.has(s)).length;
      const maxTook = Math.max(...outcomes.map((o) => o.took));
      const codes = [...new Set(outcomes.map((o) => o.code))].sort();
      record('F6', kind, { toxic: 'blackhole', seconds: 10, statements: outcomes.length, codes, maxMillis: Math.round(maxTook), recoveryMillis: Math.round(recovery), reused, keepalive: true });
      expect(outcomes.every((o) => o.code === 'QUERY_TIMEOUT' || o.code === 'ACQUIRE_TIMEOUT')).toBe(true);
      expect(codes).toContain('QUERY_TIMEOUT');
      expect(maxTook).toBeLessThan(Math.max(Q, A) + 200);
      expect(reused).toBe(0);
      toxics.push('blackhole');
    });

    it('RST: in-flight statements fail at once with CONNECTION_LOST; the next ones succeed', async () => {
      broker = await start({ acquireTimeoutMillis: 5_000 });
      const db = broker.connect();
      let inflightErrors = 0;
      let otherErrors = 0;
      let maxMillis = 0;
      for (let round = 0; round < 10; round++) {
        const inflight = [codeOf(db.query('db', sleepSql(kind, 5))), codeOf(db.query('db', sleepSql(kind, 5)))];
        await waitFor('two statements on the wire', () => proxy.connections().filter((c) => c.lastUpstream.includes('sleep(5)')).length === 2);
        const t0 = performance.now();
        proxy.resetAll();
        const codes = await Promise.all(inflight);
        maxMillis = Math.max(maxMillis, performance.now() - t0);
        for (const c of codes) if (c === 'CONNECTION_LOST') inflightErrors++;
        expect(codes).toEqual(['CONNECTION_LOST', 'CONNECTION_LOST']);
        for (let i = 0; i < 5; i++) if ((await codeOf(db.query('db', 'select 1'))) !== 'OK') otherErrors++;
      }
      record('F6', kind, { toxic: 'reset', resets: 10, inflightErrors, otherErrors, maxMillis: Math.round(maxMillis * 10) / 10 });
      expect(maxMillis).toBeLessThan(100);
      expect(otherErrors).toBe(0);
      toxics.push('reset');
    });

    it('cut after N bytes in the middle of a result: an error every time, never a short result', async () => {
      broker = await start({ acquireTimeoutMillis: 5_000 });
      const db = broker.connect();
      const sql = rowsSql(kind, 1000, 30);
      const full = (await db.query('db', sql)).rows.length;
      expect(full).toBe(1000);
      let truncatedAsSuccess = 0;
      let errors = 0;
      const cuts = 20;
      for (let i = 0; i < cuts; i++) {
        for (const c of proxy.connections()) c.end();
        await waitFor('service', async () => (await codeOf(db.query('db', 'select 1'))) === 'OK', 5_000);
        const conn = proxy.connections();
        // Cut each live connection a few bytes to 40 KB into what it sends back from now on.
        const n = 20 + Math.floor(Math.random() * 40_000);
        proxy.limitData(n + Math.max(0, ...conn.map((c) => c.forwarded.downstream)));
        const r = await db.query('db', sql).then((x) => x.rows.length, (e: BrokerError) => e.code);
        proxy.limitData(-1);
        if (typeof r === 'number' && r !== 1000) truncatedAsSuccess++;
        if (typeof r !== 'number') {
          errors++;
          expect(r).toBe('CONNECTION_LOST');
        }
      }
      record('F6', kind, { toxic: 'limit_data', cuts, errors, truncatedAsSuccess });
      expect(truncatedAsSuccess).toBe(0);
      expect(errors).toBeGreaterThan(cuts / 2);
      toxics.push('limit_data');
    });

    it('a 1-byte slicer: byte-identical results', async () => {
      const direct = await Broker.start(relConfig(kind, { max: 1 }));
      const queries = [typesSql(kind), rowsSql(kind, 300, 40), kind === 'pg' ? 'select 1/0' : 'select * from no_such_table_f6'];
      const want: unknown[] = [];
      for (const q of queries) want.push(await direct.connect().query('db', q).then((r) => r.rows, (e: BrokerError) => ({ code: e.code, sqlState: e.sqlState })));
      await direct.close();
      broker = await start({});
      const db = broker.connect();
      proxy.slicer(1);
      const got: unknown[] = [];
      for (const q of queries) got.push(await db.query('db', q).then((r) => r.rows, (e: BrokerError) => ({ code: e.code, sqlState: e.sqlState })));
      const text = (v: unknown): string => JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? `${x}n` : x));
      record('F6', kind, { toxic: 'slicer', statements: queries.length, identical: text(got) === text(want) });
      expect(got).toEqual(want);
      toxics.push('slicer');
    });

    it('down: refused at once or within the acquire deadline; service returns by itself once up', async () => {
      const A = 500;
      broker = await start({ acquireTimeoutMillis: A, connectTimeoutMillis: 500 });
      const db = broker.connect();
      await db.query('db', 'select 1');
      const inflight = codeOf(db.query('db', sleepSql(kind, 5)));
      await waitFor('a statement on the wire', () => proxy.connections().some((c) => c.lastUpstream.includes('sleep(5)')));
      await proxy.down();
      const inflightCode = await inflight;
      const took: number[] = [];
      const codes: string[] = [];
      const d0 = Date.now();
      while (Date.now() - d0 < 2_000) {
        const t0 = performance.now();
        codes.push(await codeOf(db.query('db', 'select 1')));
        took.push(performance.now() - t0);
      }
      await proxy.up();
      const u0 = performance.now();
      await waitFor('service back once up', async () => (await codeOf(db.query('db', 'select 1'))) === 'OK', 10_000, 10);
      const recovery = performance.now() - u0;
      const overshoot = Math.max(...took) - A;
      record('F6', kind, { toxic: 'down', inflight: inflightCode, refused: codes.length, codes: [...new Set(codes)], maxOvershootMillis: Math.round(overshoot), recoveryMillis: Math.round(recovery) });
      expect(inflightCode).toBe('CONNECTION_LOST');
      expect(codes.every((c) => c === 'ACQUIRE_TIMEOUT')).toBe(true);
      expect(Math.min(...took)).toBeGreaterThanOrEqual(A);
      expect(overshoot).toBeLessThan(100);
      expect(recovery).toBeLessThan(2_000);
      toxics.push('down');
      await sleep(0);
    });
  });
}
