/**
 * RELIABILITY.md S2, hostile identifiers in the config: table, column and attribute names with
 * `"`, `` ` ``, `;`, `--`, `/*`, NUL, controls, spaces, homoglyphs, dots (`pg_catalog.pg_authid`),
 * the empty string, names past the byte limit, names that collide on the server, and random ones
 * (fast-check). Each is refused when the config loads, naming the field and never echoing raw
 * control bytes. For names that pass — reserved words, mixed case, the longest allowed — the
 * generated SQL quotes every identifier (a driver spy reads every statement) and works on the real
 * server; afterwards every table is still there.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Broker, BrokerError, loadConfig } from 'threadbroker';
import { DriverSpy } from '../helpers/driver-spy.js';
import { record } from '../helpers/figures.js';
import { relConfig } from '../helpers/reliability.js';
import { Admin } from '../helpers/server-admin.js';
import { BROKER_USER, KINDS } from '../helpers/test-setup.js';

// eslint-disable-next-line no-control-regex -- matching raw controls is the point
const RAW_CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202e]/;
const SENTINEL = `rel_s2_sentinel_${BROKER_USER}`;
const LONG = `l${'x'.repeat(62)}`; // 63 bytes: the longest name both kinds take

function hostileNames(limit: number): string[] {
  const base = 'victim';
  const fixed = [
    `${base}"; drop table ${SENTINEL}; --`, `${base}\`; drop table ${SENTINEL}; --`, `${base};drop table ${SENTINEL}`,
    `${base}--`, `${base}/*`, `${base}*/`, `${base}\u0000x`, `${base}\u001b[2J`, `${base}\u202ex`, `${base} x`, ` ${base}`,
    `${base}\n`, `${base}\t`, 'mаp_users' /* Cyrillic а */, 'usеrs' /* Cyrillic е */, 'οrder' /* Greek ο */, 'pg_catalog.pg_authid',
    'information_schema.tables', 'test.users', `"${base}"`, `\`${base}\``, `'${base}'`, `${base}'`, `${base}\\`, `${base}$1`, `${base}?`,
    `${base}-x`, `${base}(x)`, `${base}%`, '', ' ', '1table', '$x', 'x'.repeat(limit + 1), 'ä'.repeat(32), `${base}\u00a0`, `${base}\u200b`,
    `${base}\ufeff`, '\u0000', 'x.y', 'a b',
  ];
  const random = fc.sample(fc.string({ minLength: 1, maxLength: 80, unit: 'binary' }).filter((s) => !/^[A-Za-z_][A-Za-z0-9_]*$/.test(s)), 300);
  return [...new Set([...fixed, ...random])];
}

for (const kind of KINDS) {
  describe(`${kind}: S2 hostile identifiers in the config`, () => {
    let admin: Admin;
    const table = kind === 'pg' ? '"user"' : '`user`';
    const q = (n: string): string => (kind === 'pg' ? `"${n}"` : `\`${n}\``);

    beforeAll(async () => {
      admin = new Admin(kind);
      await admin.exec(`drop table if exists ${SENTINEL}`, `create table ${SENTINEL} (id int primary key)`, `insert into ${SENTINEL} values (1)`);
      await admin.exec(`drop table if exists ${table}`);
      await admin.exec(kind === 'pg'
        ? `create table ${table} (${q('select')} serial primary key, ${q('group')} text, ${q('from')} text, ${q('Mixed_Case')} text, ${q(LONG)} text)`
        : `create table ${table} (${q('select')} int auto_increment primary key, ${q('group')} text, ${q('from')} text, ${q('Mixed_Case')} text, ${q(LONG)} text) engine=innodb`);
      if (kind === 'pg') await admin.exec(`grant all on ${table}, ${SENTINEL} to ${BROKER_USER}`, `grant all on sequence ${q('user_select_seq')} to ${BROKER_USER}`);
    });

    afterAll(async () => {
      await admin.exec(`drop table if exists ${table}`, `drop table if exists ${SENTINEL}`);
      await admin.close();
    });

    it('refuses every hostile name at load, in every position, naming the field; quotes every name that passes', async () => {
      const limit = kind === 'pg' ? 63 : 64;
      const names = hostileNames(limit);
      const positions: [string, (n: string) => Record<string, unknown>][] = [
        ['table', (n) => ({ database: 'db', table: n, key: 'id', attributes: ['id'] })],
        ['attributes', (n) => ({ database: 'db', table: 'ok', key: 'id', attributes: { id: 'id', x: n } })],
        // Attribute names are JavaScript keys, not SQL: a plain name of any length up to 128 is fine there.
        ['attributes', (n) => ({ database: 'db', table: 'ok', key: 'id', attributes: { id: 'id', [n]: 'x' } })],
      ];
      const plainAttribute = (n: string): boolean => /^[A-Za-z_][A-Za-z0-9_]{0,127}$/.test(n);
      let tried = 0;
      let accepted = 0;
      const acceptedNames: string[] = [];
      let echoedControls = 0;
      let unnamed = 0;
      for (const name of names) {
        for (const [i, [field, make]] of positions.entries()) {
          if (i === 2 && (name === '' || plainAttribute(name))) continue;
          tried++;
          const err = await loadConfig({ ...relConfig(kind), classes: { Bad: make(name) } }).then(() => undefined, (e: unknown) => e);
          if (!(err instanceof BrokerError)) {
            accepted++;
            acceptedNames.push(`${field}: ${JSON.stringify(name)}`);
            continue;
          }
          expect(['IDENTIFIER_INVALID', 'CONFIG_INVALID']).toContain(err.code);
          if (!err.message.includes(`classes.Bad.${field}`)) unnamed++;
          if (RAW_CONTROL.test(err.message)) echoedControls++;
        }
      }
      // Two columns that are one name on the server.
      const collisions: Record<string, unknown>[] = kind === 'mysql'
        ? [{ database: 'db', table: 'ok', key: 'id', attributes: { id: 'id', a: 'Abc', b: 'abc' } }]
        : [{ database: 'db', table: 'ok', key: 'id', attributes: { id: 'id', a: 'same', b: 'same' } }];
      for (const c of collisions) {
        tried++;
        const err = await loadConfig({ ...relConfig(kind), classes: { Bad: c } }).then(() => undefined, (e: unknown) => e);
        if (!(err instanceof BrokerError)) {
          accepted++;
          acceptedNames.push(`collision: ${JSON.stringify(c)}`);
        }
      }

      // Names that pass: reserved words, mixed case, the longest allowed; all quoted in every statement.
      const spy = new DriverSpy();
      const broker = await Broker.start({
        ...relConfig(kind, { max: 2 }),
        classes: { Hostile: { database: 'db', table: 'user', key: 'id', attributes: { id: 'select', grp: 'group', from: 'from', MixedCase: 'Mixed_Case', long: LONG }, types: { id: 'integer' } } },
      });
      let unquoted = 0;
      let statements = 0;
      try {
        const m = broker.connect().model<{ id: number; grp: string | null; from: string | null; MixedCase: string | null; long: string | null }>('Hostile');
        const row = await m.insert({ grp: 'g', from: 'f', MixedCase: 'M', long: 'L' });
        expect(await m.get(row.id)).toEqual(row);
        expect(await m.find({ grp: 'g' }, { orderBy: 'MixedCase', limit: 5 })).toEqual([row]);
        await m.update({ ...row, from: 'f2' });
        expect(await m.count({ from: 'f2' })).toBe(1);
        await m.delete(row.id);
        expect(await m.count()).toBe(0);
        const quoted = kind === 'pg' ? /"(?:[^"]|"")*"/g : /`(?:[^`]|``)*`/g;
        for (const s of spy.statements) {
          if (!/\bINSERT INTO\b|\bSELECT\b|\bUPDATE\b|\bDELETE FROM\b/.test(s.sql)) continue;
          statements++;
          const bare = s.sql.replace(quoted, '');
          for (const n of ['user', 'select', 'group', 'from', 'Mixed_Case', LONG]) if (new RegExp(`\\b${n}\\b`).test(bare)) unquoted++;
        }
      } finally {
        spy.restore();
        await broker.close();
      }
      const sentinelLeft = await admin.scalar(`select count(*) as n from ${SENTINEL}`);
      const authid = kind === 'pg' ? await admin.scalar('select count(*) as n from pg_catalog.pg_authid') : 1;
      const figures = { hostileNames: names.length, tried, accepted, unnamedField: unnamed, echoedControls, quotedStatements: statements, unquoted, tablesHarmed: sentinelLeft === 1 && authid > 0 ? 0 : 1 };
      record('S2', kind, figures);
      console.log(`[S2] ${kind}: ${JSON.stringify(figures)}`);
      expect(acceptedNames).toEqual([]);
      expect(accepted).toBe(0);
      expect(unnamed).toBe(0);
      expect(echoedControls).toBe(0);
      expect(statements).toBeGreaterThanOrEqual(6);
      expect(unquoted).toBe(0);
      expect(sentinelLeft).toBe(1);
    });
  });
}
