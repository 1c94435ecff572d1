/**
 * Regressions found by the reliability suite (RELIABILITY.md S4, S6) that need no server:
 * duplicate keys in a config file, and the size of a request as `maxRequestBytes` counts it.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BrokerError, loadConfig } from 'threadbroker';
import { requestBytes } from '../../src/transport/request-size.js';

const dir = mkdtempSync(join(tmpdir(), 'tb-rel-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function messageOf(text: string): Promise<string> {
  const path = join(dir, `c${Math.random().toString(36).slice(2)}.json5`);
  writeFileSync(path, text);
  const err = await loadConfig(path).then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(BrokerError);
  expect((err as BrokerError).code).toBe('CONFIG_INVALID');
  return (err as BrokerError).message;
}

describe('config files with a key given twice', () => {
  it('refuse a repeated option, naming both places (JSON5 alone keeps the last one silently)', async () => {
    const msg = await messageOf("{ databases: { main: { driver: 'pg', url: 'postgres://u:secret@h/db',\n  max: 4, max: 40 } } }");
    expect(msg).toMatch(/:2:3: databases\.main\.max is given more than once \(again at line 2, column 11\)/);
    expect(msg).not.toContain('secret');
  });

  it('refuse a repeated database, naming it once, not every key inside it', async () => {
    const msg = await messageOf("{ databases: {\n main: { driver: 'pg', url: 'postgres://h/a' },\n main: { driver: 'mysql', url: 'mysql://h/b' } } }");
    expect(msg.split('\n')).toEqual([expect.stringMatching(/:2:2: databases\.main is given more than once \(again at line 3, column 2\)$/)]);
  });

  it('still take the same key in different objects', async () => {
    const path = join(dir, 'ok.json5');
    writeFileSync(path, "{ databases: { a: { driver: 'pg', url: 'postgres://h/a', max: 2 }, b: { driver: 'pg', url: 'postgres://h/b', max: 3 } } }");
    const c = await loadConfig(path);
    expect([c.databases.a.max, c.databases.b.max]).toEqual([2, 3]);
  });
});

describe('request size (maxRequestBytes)', () => {
  it('counts the text and every parameter, binary data by its length', () => {
    expect(requestBytes('select 1', undefined)).toBe(8);
    expect(requestBytes('x', ['abc', 1, null, Buffer.alloc(100)])).toBe(1 + 8 + 3 + 8 + 8 + 100);
    expect(requestBytes('x', [{ k: 'vv' }, [1, 2]])).toBe(1 + 8 + (8 + 1 + 2) + (8 + 8 + 8));
  });

  it('stops counting soon after the limit, and ends on cyclic values', () => {
    const big = Array.from({ length: 1_000_000 }, () => 'x'.repeat(100));
    const t0 = performance.now();
    expect(requestBytes('', big, 1000)).toBeGreaterThan(1000);
    expect(performance.now() - t0).toBeLessThan(50);
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(requestBytes('', [cyclic])).toBeGreaterThan(0);
  });
});

describe('the resolved config', () => {
  it('masks url and password even for util.inspect with showHidden and getters (console.dir of a careless app)', async () => {
    const util = await import('node:util');
    const c = await loadConfig({ databases: { a: { driver: 'pg', url: 'postgres://app:S3cretPw@db.internal:5432/app' }, b: { driver: 'mysql', host: 'h', user: 'u', password: 'S3cretPw2' } } });
    const shown = [
      util.inspect(c, { showHidden: true, getters: true, depth: null }),
      util.inspect(c.databases.a, { showHidden: true, getters: true }),
      util.format('%o %O', c, c),
    ].join('\n');
    expect(shown).not.toMatch(/S3cretPw/);
    expect(shown).toContain('postgres://app:****@db.internal:5432/app');
    expect(shown).toContain("password: '<masked>'");
    // The values themselves are still there for the drivers.
    expect(c.databases.a.url).toBe('postgres://app:S3cretPw@db.internal:5432/app');
    expect(c.databases.b.password).toBe('S3cretPw2');
  });
});
