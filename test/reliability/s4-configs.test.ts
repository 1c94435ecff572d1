/**
 * RELIABILITY.md S4, malformed or unsafe configs, as JSON5 files and as objects, each carrying the
 * canary password: invalid JSON5, duplicate keys, `__proto__` / `constructor` keys, unknown
 * fields, `max` ≤ 0, NaN, fractional or a string, timeouts below their floor or past Node's timer
 * range, idle timeout above lifetime, a missing `${NAME}`, a url of the wrong scheme or unparsable,
 * url and host together, new limits out of range, a cyclic or non-plain object. Every one fails
 * fast with CONFIG_INVALID naming the field (files: with line and column), never echoing a secret,
 * and the parsed config never gets prototype keys.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BrokerError, loadConfig } from 'threadbroker';
import { record } from '../helpers/figures.js';
import { CANARY } from '../helpers/reliability.js';
import { KINDS } from '../helpers/test-setup.js';

const dir = mkdtempSync(join(tmpdir(), 'tb-rel-s4-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

for (const kind of KINDS) {
  describe(`${kind}: S4 malformed or unsafe configs`, () => {
    const scheme = kind === 'pg' ? 'postgres' : 'mysql';
    const url = `${scheme}://tb_rel:${CANARY}@127.0.0.1/test`;
    const db = (extra: string) => `{ databases: { main: { driver: '${kind}', url: '${url}', ${extra} } } }`;
    const host = (extra: string) => `{ databases: { main: { driver: '${kind}', host: '127.0.0.1', user: 'u', password: '${CANARY}', ${extra} } } }`;

    const files: [string, string][] = [
      ['invalid JSON5 right after the secret', `{ databases: { main: { driver: '${kind}', url: '${url}' x } } }`],
      ['an unterminated string holding the secret', `{ databases: { main: { driver: '${kind}', password: '${CANARY}`],
      ['a duplicate key', db('max: 4, max: 0')],
      ['a duplicate database', `{ databases: { main: { driver: '${kind}', url: '${url}' }, main: { driver: '${kind}', url: '${url}' } } }`],
      ['a __proto__ key', `{ "__proto__": { "polluted": true }, databases: { main: { driver: '${kind}', url: '${url}' } } }`],
      ['a constructor key', db('constructor: { prototype: { polluted: true } }')],
      ['an unknown field', db('maxx: 4')],
      ['max 0', db('max: 0')],
      ['max -1', db('max: -1')],
      ['max 1.5', db('max: 1.5')],
      ['max NaN', db('max: NaN')],
      ['max Infinity', db('max: Infinity')],
      ['max as a string', db("max: '8'")],
      ['a connect timeout below its floor', db('connectTimeoutMillis: 50')],
      ['a timeout past the timer range', db('acquireTimeoutMillis: 3000000000')],
      ['a negative query timeout', db('queryTimeoutMillis: -1')],
      ['a fractional row limit', db('maxRows: 1.5')],
      ['a result limit as a string', db("maxResultBytes: 'lots'")],
      ['idle timeout above lifetime', db('idleTimeoutMillis: 60000, maxLifetimeMillis: 1000')],
      ['maxReserved not below max', db('max: 4, maxReserved: 4')],
      ['a housekeeping tick below its floor', `{ databases: { main: { driver: '${kind}', url: '${url}' } }, reservations: { housekeepingMillis: 5 } }`],
      ['lease idle above lease lifetime', `{ databases: { main: { driver: '${kind}', url: '${url}' } }, reservations: { idleTimeoutMillis: 9000, maxLifetimeMillis: 10 } }`],
      ['a missing environment variable', host("database: 'test', port: 1, user: '${TB_REL_MISSING_ENV_VAR}'")],
      ['a url of the other kind', `{ databases: { main: { driver: '${kind}', url: '${kind === 'pg' ? 'mysql' : 'postgres'}://u:${CANARY}@127.0.0.1/test' } } }`],
      ['an unparsable url', `{ databases: { main: { driver: '${kind}', url: '${scheme}://u:${CANARY} x@@:99999/' } } }`],
      ['url and host together', `{ databases: { main: { driver: '${kind}', url: '${url}', host: '127.0.0.1' } } }`],
      ['a password that is not a string', host('password2: 1, port: 3306').replace(`password: '${CANARY}', `, 'password: 1234, ')],
      ['no databases', '{ databases: {} }'],
      ['a class on an unknown database', `{ databases: { main: { driver: '${kind}', url: '${url}' } }, classes: { C: { database: 'nope', table: 't', key: 'id', attributes: ['id'] } } }`],
      ['an unknown driver', `{ databases: { main: { driver: 'oracle', url: '${url}' } } }`],
      ['a database name that is not an identifier', `{ databases: { 'main db': { driver: '${kind}', url: '${url}' } } }`],
    ];

    const cyclic: Record<string, unknown> = { databases: { main: { driver: kind, url } } };
    (cyclic.databases as Record<string, unknown>).self = cyclic;
    const objects: [string, unknown][] = [
      ['a non-plain object', { databases: { main: new Map([['driver', kind], ['url', url]]) } }],
      ['a function value', { databases: { main: { driver: kind, url, max: () => 4 } } }],
      ['a cyclic object', cyclic],
      ['a __proto__ own key', JSON.parse(`{"databases":{"main":{"driver":"${kind}","url":"${url}","__proto__":{"max":1}}}}`)],
      ['a bigint', { databases: { main: { driver: kind, url, max: 4n } } }],
      ['a symbol key', { databases: { main: { driver: kind, url, [Symbol('x')]: 1, max: 0 } } }],
      ['max as null', { databases: { main: { driver: kind, url, max: null } } }],
    ];

    it(`refuses ${files.length} malformed files and ${objects.length} objects, naming the field, never echoing the secret`, async () => {
      const messages: string[] = [];
      let accepted = 0;
      let unnamed = 0;
      let wrongCode = 0;
      for (const [what, text] of files) {
        const path = join(dir, `${kind}-${messages.length}.json5`);
        writeFileSync(path, text);
        const err = await loadConfig(path).then(() => undefined, (e: unknown) => e);
        if (err === undefined) {
          accepted++;
          messages.push(`ACCEPTED: ${what}`);
          continue;
        }
        const e = err as BrokerError;
        if (!(e instanceof BrokerError) || (e.code !== 'CONFIG_INVALID' && e.code !== 'IDENTIFIER_INVALID')) wrongCode++;
        // Every line names the file with a line and column, and a key path (or what is wrong with the text).
        if (!e.message.split('\n').every((l) => l.startsWith(`${path}:`))) unnamed++;
        messages.push(`${what}: ${e.message}`);
      }
      for (const [what, obj] of objects) {
        const err = await loadConfig(obj as object).then(() => undefined, (e: unknown) => e);
        if (err === undefined) {
          accepted++;
          messages.push(`ACCEPTED: ${what}`);
          continue;
        }
        const e = err as BrokerError;
        if (!(e instanceof BrokerError) || e.code !== 'CONFIG_INVALID') wrongCode++;
        if (!/databases|config/.test(e.message)) unnamed++;
        messages.push(`${what}: ${e.message}`);
      }
      const echoed = messages.filter((m) => m.includes(CANARY)).length;
      const polluted = ({} as Record<string, unknown>).polluted !== undefined || Object.keys(Object.prototype).length > 0;
      const figures = { malformed: files.length + objects.length, accepted, wrongCode, unnamedField: unnamed, secretsEchoed: echoed, polluted };
      record('S4', kind, figures);
      console.log(`[S4] ${kind}: ${JSON.stringify(figures)}`);
      expect(messages.filter((m) => m.startsWith('ACCEPTED'))).toEqual([]);
      expect(wrongCode).toBe(0);
      expect(unnamed).toBe(0);
      expect(echoed).toBe(0);
      expect(polluted).toBe(false);
    });
  });
}
