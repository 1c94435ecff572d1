import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BrokerError } from '../../src/errors.js';
import { loadConfig, resolveConfig } from '../../src/config/load-config.js';
import { buildClassMap } from '../../src/mapper/class-map.js';
import { attributeProblem, foldIdentifier, identifierProblem } from '../../src/util/identifiers.js';

// eslint-disable-next-line no-control-regex -- matching raw controls is the point
const RAW_CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202e]/;
const db = (driver: 'pg' | 'mysql') => ({ driver, url: driver === 'pg' ? 'postgres://u@h/d' : 'mysql://u@h/d' });

function refusal(input: unknown): BrokerError {
  try {
    resolveConfig(input);
  } catch (err) {
    expect(err).toBeInstanceOf(BrokerError);
    return err as BrokerError;
  }
  throw new Error('config was accepted');
}

describe('identifier rules', () => {
  it('accept plain names up to the kind\'s byte limit, reserved words included', () => {
    for (const ok of ['users', '_x', 'Order', 'select', 'a1_b2']) expect(identifierProblem(ok, 'pg')).toBeUndefined();
    expect(identifierProblem('x'.repeat(63), 'pg')).toBeUndefined();
    expect(identifierProblem('x'.repeat(64), 'pg')).toMatch(/64 bytes/);
    expect(identifierProblem('x'.repeat(64), 'mysql')).toBeUndefined();
    expect(identifierProblem('x'.repeat(65), 'mysql')).toMatch(/65 bytes/);
  });

  it('refuse quotes, dots, comments, spaces, controls, homoglyphs and leading digits', () => {
    for (const bad of ['a"b', 'a`b', 'a;b', 'a--', 'a/*', 'a b', 'a\u0000', 'a\u202e', 'mаp', 'pg_catalog.pg_authid', '', '1a', 'é']) {
      expect(identifierProblem(bad, 'pg'), bad).toBeDefined();
      expect(identifierProblem(bad, 'mysql'), bad).toBeDefined();
    }
  });

  it('fold names the way the server compares them', () => {
    expect(foldIdentifier('Name', 'mysql')).toBe(foldIdentifier('name', 'mysql'));
    expect(foldIdentifier('Name', 'pg')).not.toBe(foldIdentifier('name', 'pg'));
    expect(foldIdentifier('a'.repeat(70), 'pg')).toBe('a'.repeat(63));
  });

  it('keep prototype keys out of attribute names', () => {
    for (const a of ['__proto__', 'constructor', 'prototype']) expect(attributeProblem(a)).toMatch(/reserved/);
    expect(attributeProblem('fullName')).toBeUndefined();
  });
});

describe('config load', () => {
  it('refuses hostile names with IDENTIFIER_INVALID naming the field, never echoing raw controls', () => {
    const err = refusal({ databases: { main: db('pg') }, classes: { U: { database: 'main', table: 'users\u0000;\u001b[2J', key: 'id', attributes: ['id'] } } });
    expect(err.code).toBe('IDENTIFIER_INVALID');
    expect(err.message).toMatch(/^classes\.U\.table must be letters, digits and _ only/);
    expect(err.message).toContain('\\u0000');
    expect(err.message).not.toMatch(RAW_CONTROL);
  });

  it('checks columns per driver: 64 bytes is too long for PostgreSQL only', () => {
    const cls = (driver: 'pg' | 'mysql') => ({ databases: { main: db(driver) }, classes: { U: { database: 'main', table: 't', key: 'id', attributes: { id: 'id', n: 'n'.repeat(64) } } } });
    expect(refusal(cls('pg')).message).toMatch(/classes\.U\.attributes\.n column is 64 bytes long; PostgreSQL identifiers are at most 63 bytes/);
    expect(() => resolveConfig(cls('mysql'))).not.toThrow();
  });

  it('refuses columns that collide on the server, and lists every problem', () => {
    const err = refusal({
      databases: { my: db('mysql') },
      classes: { U: { database: 'my', table: 'bad table', key: 'id', attributes: { id: 'ID', x: 'id', y: 'ok' } } },
    });
    expect(err.code).toBe('IDENTIFIER_INVALID');
    expect(err.message.split('\n')).toEqual([
      'classes.U.table must be letters, digits and _ only (ASCII, no dots, quotes or spaces), not starting with a digit (got "bad table")',
      'classes.U.attributes.x column "id" collides with column "ID" on MySQL/MariaDB (same name after truncation and case folding)',
    ]);
  });

  it('reports schema problems first, as CONFIG_INVALID', () => {
    expect(refusal({ databases: { main: db('pg') }, classes: { U: { database: 'main', table: 'a b', key: 'nope', attributes: ['id'] } } }).code).toBe('CONFIG_INVALID');
  });

  const dir = mkdtempSync(join(tmpdir(), 'tb-map-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('names the file, line and column of the offending key', async () => {
    const file = join(dir, 'bad.json5');
    writeFileSync(file, `{\n  databases: { main: { driver: 'pg', url: 'postgres://u@h/d' } },\n  classes: {\n    U: { database: 'main',\n      table: 'users; drop table users', key: 'id', attributes: ['id'] },\n  },\n}\n`);
    const err = await loadConfig(file).then(() => undefined, (e: unknown) => e as BrokerError);
    expect(err?.code).toBe('IDENTIFIER_INVALID');
    expect(err?.message).toContain(`${file}:5:7: classes.U.table must be`);
  });

  it('has the mapper re-check what reaches it', () => {
    expect(() => buildClassMap({ name: 'U', database: 'm', table: 'x"y', key: 'id', attributes: { id: 'id' }, types: {} }, 'pg'))
      .toThrow(expect.objectContaining({ code: 'IDENTIFIER_INVALID' }));
    expect(() => buildClassMap({ name: 'U', database: 'm', table: 't', key: 'id', attributes: { id: 'id', x: 'a`b' }, types: {} }, 'mysql'))
      .toThrow(expect.objectContaining({ code: 'IDENTIFIER_INVALID' }));
  });
});
