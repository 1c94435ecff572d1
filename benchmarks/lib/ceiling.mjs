/**
 * The server's ceiling: what the server serves at the same 8 connections when the client is a C
 * program (pgbench, in its select-only `-S` style but with scripts on the same table and
 * statements as the Node workloads; mysqlslap where installed). Both run as child processes, so
 * the Node main thread is idle meanwhile and its ELU is not reported for these cells.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { prng, RANGE_ROWS, TABLE, TABLE_ROWS } from './workloads.mjs';

const COLUMNS = 'id, name, category, price, qty, created_at';

function run(cmd, args, opts) {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { maxBuffer: 16 << 20, ...opts }, (err, stdout, stderr) => {
      if (err) reject(Object.assign(err, { stdout, stderr }));
      else resolve({ stdout, stderr });
    });
  });
}

async function which(cmd, env) {
  for (const candidate of [cmd, `/usr/lib/postgresql/15/bin/${cmd}`, `/usr/lib/postgresql/16/bin/${cmd}`]) {
    try {
      await run(candidate, ['--version'], { timeout: 5000, env });
      return candidate;
    } catch {
      /* try the next */
    }
  }
  return undefined;
}

/**
 * @param {'pg'|'mysql'} driver
 * @param {string} adminUrl
 * @param {number} connections
 * @returns {Promise<{ tool: string|null, reason?: string, run?: (workload: string, seconds: number) => Promise<object>, close(): void }>}
 */
export async function makeCeiling(driver, adminUrl, connections) {
  const dir = mkdtempSync(join(tmpdir(), 'tb-bench-ceiling-'));
  const close = () => rmSync(dir, { recursive: true, force: true });
  const u = new URL(adminUrl);
  const host = u.hostname;
  const user = decodeURIComponent(u.username);
  const password = decodeURIComponent(u.password);
  const database = decodeURIComponent(u.pathname.slice(1)) || (driver === 'pg' ? 'postgres' : 'test');
  const estimate = new Map(); // workload -> queries per second seen last time
  if (driver === 'pg') {
    const env = { ...process.env, PGPASSWORD: password || process.env.PGPASSWORD || '' };
    const bin = await which('pgbench', env);
    if (bin === undefined) return { tool: null, reason: 'pgbench not found', close };
    const scripts = {
      select1: 'SELECT 1;\n',
      point: `\\set id random(1, ${TABLE_ROWS})\nSELECT ${COLUMNS} FROM ${TABLE} WHERE id = :id;\n`,
      range: `\\set id random(1, ${TABLE_ROWS - RANGE_ROWS + 1})\nSELECT ${COLUMNS} FROM ${TABLE} WHERE id >= :id AND id < :id + ${RANGE_ROWS} ORDER BY id;\n`,
    };
    const once = async (workload, args) => {
      const file = join(dir, `${workload}.sql`);
      writeFileSync(file, scripts[workload]);
      const base = ['-h', host, '-p', u.port || '5432', '-U', user, '-n', '-c', String(connections), '-j', '2', '-M', 'prepared', '-f', file];
      const { stdout } = await run(bin, [...base, ...args, database], { cwd: dir, env, timeout: 120_000 });
      const tps = Number(/tps = ([\d.]+) \(without initial connection time\)/.exec(stdout)?.[1]);
      const failed = Number(/number of failed transactions: (\d+)/.exec(stdout)?.[1] ?? 0);
      // pgbench's per-transaction log reads a lazily updated clock (many 0 µs entries for short
      // statements) and costs throughput, so only its mean latency is kept: clients / tps.
      const mean = Number(/latency average = ([\d.]+) ms/.exec(stdout)?.[1]) * 1000;
      return { tps, failed, mean };
    };
    return {
      tool: 'pgbench -M prepared',
      close,
      run: async (workload, seconds) => {
        if (!estimate.has(workload)) {
          // Calibration (discarded): primes the cache and gives the rate used to size the measured run.
          const cal = await once(workload, ['-T', '1']);
          estimate.set(workload, cal.tps);
        }
        const perClient = Math.max(50, Math.round((estimate.get(workload) * seconds) / connections));
        const r = await once(workload, ['-t', String(perClient)]);
        if (Number.isFinite(r.tps) && r.tps > 0) estimate.set(workload, r.tps);
        return { throughput: r.tps, p50: null, p99: null, mean: r.mean, errors: r.failed, queries: perClient * connections };
      },
    };
  }
  const bin = await which('mysqlslap', process.env);
  if (bin === undefined) return { tool: null, reason: 'mysqlslap not installed', close };
  const rnd = prng(42);
  const files = {};
  const make = (name, sqlOf, n) => {
    const file = join(dir, `${name}.sql`);
    writeFileSync(file, Array.from({ length: n }, sqlOf).join(';\n') + ';\n');
    files[name] = file;
  };
  make('select1', () => 'SELECT 1 AS x', 1);
  make('point', () => `SELECT ${COLUMNS} FROM ${TABLE} WHERE id = ${1 + Math.floor(rnd() * TABLE_ROWS)}`, 2000);
  make('range', () => {
    const lo = 1 + Math.floor(rnd() * (TABLE_ROWS - RANGE_ROWS + 1));
    return `SELECT ${COLUMNS} FROM ${TABLE} WHERE id >= ${lo} AND id < ${lo + RANGE_ROWS} ORDER BY id`;
  }, 2000);
  const once = async (workload, queries) => {
    const args = ['-h', host, '-P', u.port || '3306', '-u', user, `--create-schema=${database}`, '--no-drop',
      `--concurrency=${connections}`, '--iterations=1', `--number-of-queries=${queries}`, `--query=${files[workload]}`, '--delimiter=;'];
    if (password) args.push(`--password=${password}`);
    const { stdout } = await run(bin, args, { timeout: 120_000 });
    const secs = Number(/Average number of seconds to run all queries: ([\d.]+) seconds/.exec(stdout)?.[1]);
    return { throughput: secs > 0 ? queries / secs : NaN, secs };
  };
  return {
    tool: 'mysqlslap',
    close,
    run: async (workload, seconds) => {
      if (!estimate.has(workload)) {
        const cal = await once(workload, 8000);
        estimate.set(workload, cal.throughput);
      }
      const queries = Math.max(connections * 100, Math.round(estimate.get(workload) * seconds));
      const r = await once(workload, queries);
      if (Number.isFinite(r.throughput) && r.throughput > 0) estimate.set(workload, r.throughput);
      return { throughput: r.throughput, p50: null, p99: null, mean: (r.secs * connections * 1e6) / queries, errors: 0, queries };
    },
  };
}
