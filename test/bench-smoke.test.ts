/**
 * Keeps the benchmark harness from rotting: runs `benchmarks/run.mjs --smoke` (one tiny
 * configuration, a second or two per cell) against the real servers and checks the shape of what
 * it wrote. Throughput is not asserted: CI machines are shared, only the ratios' existence is.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { KINDS, MYSQL_URL, PG_URL } from './helpers/test-setup.js';

interface Cell {
  throughput: number;
  p50: number | null;
  p99: number | null;
  mainElu: number | null;
  errors: number;
  wrongRows: number;
  firstError?: string;
  vsBrokered: Record<string, number | null>;
}

interface DriverResult {
  workloads: Record<string, Record<string, Cell>>;
  hop?: Record<string, { brokeredP50: number; directP50: number; addedP50: number; addedP99: number }>;
  reserve?: { reserveReleaseP50: number; reserveReleaseP99: number; reserveSelect1ReleaseP50: number };
  connections: { max: number; serverPeak: number; samples: number; otherProcessesPeak: number };
  memory: { beforeStart: { heapUsed: number }; brokeredPeak: { heapUsed: number; rss: number } };
  brokerStats: { max: number; open: number };
}

interface BenchResult {
  mode: string;
  settings: { max: number; workers: number[] };
  drivers: Record<string, DriverResult>;
}

const root = fileURLToPath(new URL('..', import.meta.url));
const out = mkdtempSync(join(tmpdir(), 'tb-bench-smoke-'));

function runSmoke(): Promise<{ code: number; output: string }> {
  const args = ['benchmarks/run.mjs', '--smoke', '--drivers', KINDS.join(','), '--out', out];
  return new Promise((resolve) => {
    execFile(process.execPath, args, { cwd: root, timeout: 55_000, env: { ...process.env, PG_URL, MYSQL_URL }, maxBuffer: 8 << 20 },
      (err, stdout, stderr) => resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, output: `${stdout}\n${stderr}` }));
  });
}

const finitePositive = (x: unknown): boolean => typeof x === 'number' && Number.isFinite(x) && x > 0;

describe('benchmark harness (smoke)', () => {
  afterAll(() => {
    rmSync(out, { recursive: true, force: true });
  });

  it('measures every configuration, and reports finite ratios with the cap held on the server', async () => {
    const { code, output } = await runSmoke();
    expect(code, output).toBe(0);
    const result = JSON.parse(readFileSync(join(out, 'smoke-latest.json'), 'utf8')) as BenchResult;
    expect(result.mode).toBe('smoke');
    expect(Object.keys(result.drivers).sort()).toEqual([...KINDS].sort());
    const n = result.settings.workers[0];
    const brokered = `brokered-${n}`;

    for (const [kind, d] of Object.entries(result.drivers)) {
      const cells = d.workloads.select1;
      expect(Object.keys(cells), kind).toEqual(expect.arrayContaining([brokered, `per-worker-${n}`, 'main-only']));
      for (const [id, c] of Object.entries(cells)) {
        const where = `${kind} ${id}: ${c.firstError ?? ''}`;
        expect(finitePositive(c.throughput), where).toBe(true);
        expect(c.errors + c.wrongRows, where).toBe(0);
        expect(finitePositive(c.vsBrokered[brokered]), where).toBe(true);
        if (id !== 'ceiling') {
          expect(finitePositive(c.p50) && finitePositive(c.p99) && c.p99! >= c.p50!, where).toBe(true);
          expect(c.mainElu, where).toBeGreaterThanOrEqual(0);
          expect(c.mainElu, where).toBeLessThanOrEqual(1);
        }
      }
      expect(cells[brokered].vsBrokered[brokered]).toBe(1);

      // The cap, seen from the server by a separate admin connection.
      expect(d.connections.samples, kind).toBeGreaterThan(0);
      expect(d.connections.serverPeak, kind).toBeGreaterThan(0);
      expect(d.connections.serverPeak, kind).toBeLessThanOrEqual(result.settings.max);
      expect(d.connections.otherProcessesPeak, kind).toBeGreaterThanOrEqual(0);
      expect(d.brokerStats.open, kind).toBeLessThanOrEqual(result.settings.max);

      expect(Number.isFinite(d.hop?.select1.addedP50), kind).toBe(true);
      expect(finitePositive(d.hop?.select1.brokeredP50) && finitePositive(d.hop?.select1.directP50), kind).toBe(true);
      expect(finitePositive(d.reserve?.reserveReleaseP50) && finitePositive(d.reserve?.reserveSelect1ReleaseP50), kind).toBe(true);
      expect(finitePositive(d.memory.beforeStart.heapUsed) && finitePositive(d.memory.brokeredPeak.heapUsed), kind).toBe(true);
    }

    expect(readFileSync(join(out, 'smoke-latest.svg'), 'utf8')).toMatch(/^<svg[\s\S]*<\/svg>\n$/);
    expect(existsSync(join(out, 'smoke-latest.md'))).toBe(true);
  }, 60_000);
});
