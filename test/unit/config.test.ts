import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import util from 'node:util';
import { BrokerError } from '../../src/errors.js';
import { loadConfig, resolveConfig } from '../../src/config/load-config.js';
import { configJsonSchema, formatPath } from '../../src/config/schema.js';
import { DEFAULTS } from '../../src/config/defaults.js';
import { emitSchema } from '../../scripts/emit-schema.js';

const CANARY = 'canary-S3cr3t-7f3a9e';
const MYSQL_PASSWORD = `${CANARY}-mysql`;
const fixture = (name: string) => fileURLToPath(new URL(`../fixtures/configs/${name}`, import.meta.url));
/** Raw C0/C1 controls other than the newline that separates problems. */
// eslint-disable-next-line no-control-regex -- matching raw controls is the point
const RAW_CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202e]/;

/** The BrokerError a config load throws; fails the test when it does not throw one. */
async function configError(load: () => unknown): Promise<BrokerError> {
  try {
    await load();
  } catch (err) {
    expect(err).toBeInstanceOf(BrokerError);
    const e = err as BrokerError;
    expect(e.code).toBe('CONFIG_INVALID');
    expect(e.message).not.toContain('canary');
    expect(e.message).not.toMatch(RAW_CONTROL);
    return e;
  }
  throw new Error('expected CONFIG_INVALID, but the config was accepted');
}

const pg = (extra: Record<string, unknown> = {}) => ({ driver: 'pg', host: 'localhost', ...extra });

beforeAll(() => {
  process.env['TB_TEST_MYSQL_PASSWORD'] = MYSQL_PASSWORD;
});
afterAll(() => {
  delete process.env['TB_TEST_MYSQL_PASSWORD'];
  delete process.env['TB_TEST_URL'];
});

describe('good config', () => {
  it('loads good.json5 with defaults, names, attribute maps and env values', async () => {
    const c = await loadConfig(fixture('good.json5'));
    expect(Object.keys(c.databases)).toEqual(['main', 'legacy', 'demo']);
    const { main, legacy, demo } = c.databases;
    expect(main).toMatchObject({ name: 'main', driver: 'pg', max: 8, maxReserved: 7, ...pick(DEFAULTS.database, 'acquireTimeoutMillis', 'queueLimit', 'idleTimeoutMillis', 'maxLifetimeMillis', 'connectTimeoutMillis') });
    expect(main?.url).toBe('postgres://postgres@127.0.0.1:5432/test');
    expect(legacy).toMatchObject({ name: 'legacy', driver: 'mysql', host: '127.0.0.1', port: 3306, user: 'root', database: 'test', max: 4, maxReserved: 3, acquireTimeoutMillis: 5000, queueLimit: 1000 });
    expect(legacy?.password).toBe(MYSQL_PASSWORD);
    expect(demo).toMatchObject({ embedded: { dataDir: '.threadbroker/pg' }, maxReserved: 2 });
    expect(c.reservations).toEqual({ idleTimeoutMillis: 30000, maxLifetimeMillis: 300000, housekeepingMillis: 1000 });
    expect(c.classes['User']).toEqual({
      name: 'User', database: 'main', table: 'users', key: 'id', version: 'version',
      attributes: { id: 'id', name: 'full_name', email: 'email', version: 'version' }, types: { id: 'bigint', version: 'integer' },
    });
    expect(c.classes['Order']).toEqual({
      name: 'Order', database: 'legacy', table: 'orders', key: 'id',
      attributes: { id: 'id', user_id: 'user_id', total: 'total', status: 'status' }, types: {},
    });
  });

  it('takes a file: URL and an object alike', async () => {
    const byUrl = await loadConfig(pathToFileURL(fixture('good.json5')));
    expect(byUrl.databases['legacy']?.max).toBe(4);
    const byObject = await loadConfig({ databases: { db: pg() } });
    expect(byObject.databases['db']).toMatchObject({ max: 10, maxReserved: 9 });
    expect(byObject.reservations).toEqual(DEFAULTS.reservations);
    expect(byObject.classes).toEqual({});
  });

  it('deep-freezes the result', async () => {
    const c = await loadConfig(fixture('good.json5'));
    for (const o of [c, c.databases, c.databases['main'], c.databases['demo']?.embedded, c.reservations, c.classes, c.classes['User']?.attributes, c.classes['Order']?.types]) {
      expect(Object.isFrozen(o)).toBe(true);
    }
    expect(() => { (c.databases['main'] as { max: number }).max = 1; }).toThrow(TypeError);
  });

  it('interpolates several ${NAME} in one string', () => {
    process.env['TB_TEST_URL'] = 'postgres://h';
    process.env['TB_TEST_URL_DB'] = 'app';
    try {
      const c = resolveConfig({ databases: { main: { driver: 'pg', url: '${TB_TEST_URL}/${TB_TEST_URL_DB}' } } });
      expect(c.databases['main']?.url).toBe('postgres://h/app');
    } finally {
      delete process.env['TB_TEST_URL_DB'];
    }
  });

  it('keeps $${ as a literal ${ and treats undefined values as absent', () => {
    const c = resolveConfig({ databases: { main: pg({ user: 'a$${b}', url: undefined, password: '${TB_TEST_MYSQL_PASSWORD}!' }) } });
    expect(c.databases['main']?.user).toBe('a${b}');
    expect(c.databases['main']?.password).toBe(`${MYSQL_PASSWORD}!`);
  });
});

const BAD: [file: string, fragment: string][] = [
  ['bad-json5.json5', 'invalid JSON5: unexpected character'],
  ['unknown-key.json5', 'databases.main.maxx is not a known option'],
  ['max-zero.json5', 'databases.main.max must be a positive integer (got 0)'],
  ['max-string.json5', 'databases.main.max must be a positive integer (got "ten")'],
  ['max-nan.json5', 'databases.main.max must be a positive integer (got NaN)'],
  ['max-float.json5', 'databases.main.max must be a positive integer (got 2.5)'],
  ['negative-timeout.json5', 'databases.main.acquireTimeoutMillis must be a positive integer (got -5)'],
  ['connect-timeout-low.json5', 'databases.main.connectTimeoutMillis must be an integer of at least 100 (got 50)'],
  ['timeout-overflow.json5', 'databases.main.maxLifetimeMillis must be at most 2147483647'],
  ['idle-over-lifetime.json5', 'databases.main.idleTimeoutMillis (60000) must not exceed maxLifetimeMillis (30000)'],
  ['reservations-idle-over-lifetime.json5', 'reservations.idleTimeoutMillis (600000) must not exceed maxLifetimeMillis (300000, the default)'],
  ['housekeeping-low.json5', 'reservations.housekeepingMillis must be an integer of at least 10 (got 5)'],
  ['missing-env.json5', 'databases.legacy.password uses environment variable TB_TEST_SURELY_UNSET_VAR, which is not set'],
  ['url-scheme.json5', "databases.main.url must start with postgres:// or postgresql:// for driver 'pg'"],
  ['url-and-host.json5', 'databases.main.host cannot be combined with url'],
  ['no-source.json5', 'databases.main needs exactly one of url, host or embedded'],
  ['user-with-url.json5', 'databases.main.password is only allowed with host, not with url'],
  ['embedded-mysql.json5', "databases.legacy.embedded is only supported with driver 'pg'"],
  ['bad-driver.json5', "databases.main.driver must be 'pg' or 'mysql' (got \"oracle\")"],
  ['missing-driver.json5', 'databases.main.driver is required'],
  ['empty-databases.json5', 'databases must name at least one database'],
  ['max-reserved.json5', 'databases.main.maxReserved must be at most max - 1 = 3'],
  ['bad-db-name.json5', 'databases["my-db"] is not a valid database name'],
  ['bad-class-name.json5', 'classes["1User"] is not a valid class name'],
  ['class-unknown-db.json5', 'classes.User.database names no configured database (got "nope"; configured: main)'],
  ['key-not-attribute.json5', 'classes.User.key must be one of the attributes (got "uid"; attributes: "id", "name")'],
  ['version-not-attribute.json5', 'classes.User.version must be one of the attributes (got "rev"'],
  ['empty-table.json5', 'classes.User.table must not be empty'],
  ['empty-attribute.json5', 'classes.User.attributes[1] must not be empty'],
  ['bad-column-type.json5', 'classes.User.types.id must be one of integer, bigint'],
  ['proto-key.json5', 'databases.main.__proto__ is not allowed as a key'],
  ['constructor-key.json5', 'constructor is not allowed as a key'],
  ['tricky-locate.json5', 'classes.Bad.version must be one of the attributes (got "v"'],
];

describe('bad config files', () => {
  it.each(BAD)('%s -> CONFIG_INVALID at the marked line', async (file, fragment) => {
    const err = await configError(() => loadConfig(fixture(file)));
    const line = readFileSync(fixture(file), 'utf8').split('\n').findIndex((l) => l.includes('// ERROR')) + 1;
    expect(line).toBeGreaterThan(0);
    expect(err.message).toContain(fragment);
    expect(err.message).toMatch(new RegExp(`${file.replace(/[.-]/g, '\\$&')}:${line}:\\d+: `));
  });

  it.each([
    ['unknown-key.json5', '6:7'], ['max-zero.json5', '6:7'], ['bad-db-name.json5', '4:5'],
    ['tricky-locate.json5', '16:7'], ['bad-json5.json5', '4:14'], ['empty-attribute.json5', '6:7'],
  ])('%s points at the key column (%s)', async (file, pos) => {
    expect((await configError(() => loadConfig(fixture(file)))).message).toContain(`${file}:${pos}: `);
  });

  it('does not pollute Object.prototype', async () => {
    await configError(() => loadConfig(fixture('proto-key.json5')));
    await configError(() => loadConfig(fixture('constructor-key.json5')));
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
  });

  it('refuses an unreadable file', async () => {
    expect((await configError(() => loadConfig(fixture('no-such-file.json5')))).message).toMatch(/no-such-file\.json5: cannot read the config file \(ENOENT\)/);
  });

  it('lists every problem, each with its own line', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tb-config-'));
    try {
      const file = join(dir, 'multi.json5');
      writeFileSync(file, "{\n  databases: {\n    a: { driver: 'pg', host: 'h', max: 0 },\n    b: { driver: 'pg', host: 'h',\n      foo: 1 },\n  },\n}\n");
      const msg = (await configError(() => loadConfig(file))).message;
      expect(msg).toContain('multi.json5:3:35: databases.a.max must be a positive integer');
      expect(msg).toContain('multi.json5:5:7: databases.b.foo is not a known option');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('bad config objects', () => {
  it.each<[string, unknown, string]>([
    ['a non-object', 5, 'config must be an object (got 5)'],
    ['null', null, 'config must be an object'],
    ['missing databases', {}, 'databases is required'],
    ['a class instance', { databases: { main: new Date(0) } }, 'databases.main must be a plain object'],
    ['a function', { databases: { main: pg({ max: () => 3 }) } }, 'databases.main.max must be a JSON value, not a function'],
    ['a __proto__ own key', JSON.parse('{"databases":{"main":{"driver":"pg","host":"h","__proto__":{"x":1}}}}'), 'databases.main.__proto__ is not allowed as a key'],
    ['a malformed ${', { databases: { main: pg({ user: 'a${b' }) } }, 'databases.main.user has a malformed ${NAME} reference'],
    ['an invalid env name', { databases: { main: pg({ user: '${1X}' }) } }, 'databases.main.user has a malformed ${NAME} reference'],
    ['a missing env var', { databases: { main: { driver: 'pg', url: '${TB_TEST_URL}/${TB_TEST_URL_DB}' } } }, 'databases.main.url uses environment variable TB_TEST_URL_DB, which is not set'],
    ['attributes of the wrong type', { databases: { main: pg() }, classes: { U: { database: 'main', table: 't', key: 'id', attributes: 5 } } }, 'classes.U.attributes must be an object of attribute -> column'],
    ['a duplicate column', { databases: { main: pg() }, classes: { U: { database: 'main', table: 't', key: 'id', attributes: { id: 'id', b: 'id' } } } }, 'classes.U.attributes.b maps to column "id" already used by attribute "id"'],
    ['a type for no attribute', { databases: { main: pg() }, classes: { U: { database: 'main', table: 't', key: 'id', attributes: ['id'], types: { x: 'text' } } } }, 'classes.U.types.x is not an attribute of this class'],
    ['version = key', { databases: { main: pg() }, classes: { U: { database: 'main', table: 't', key: 'id', version: 'id', attributes: ['id'] } } }, 'classes.U.version must not be the key'],
    ['embedded.port out of range', { databases: { main: { driver: 'pg', embedded: { dataDir: 'd', port: 70000 } } } }, 'databases.main.embedded.port must be at most 65535'],
  ])('refuses %s without a file position', async (_what, input, fragment) => {
    process.env['TB_TEST_URL'] = 'postgres://h';
    const err = await configError(() => resolveConfig(input));
    expect(err.message).toContain(fragment);
    expect(err.message.startsWith(fragment.split(' ')[0] as string)).toBe(true);
  });

  it('escapes control characters in key names and echoed values', async () => {
    const a = await configError(() => resolveConfig({ databases: { 'a\u001b[2Jb': pg() } }));
    expect(a.message).toContain('databases["a\\u001b[2Jb"] is not a valid database name');
    const b = await configError(() => resolveConfig({ databases: { main: pg({ max: 'x\u0007\u202ey', 'k\u0000': 1 }) } }));
    expect(b.message).toContain('databases.main.max must be a positive integer (got "x\\u0007\\u202ey")');
    expect(b.message).toContain('databases.main["k\\u0000"] is not a known option');
  });

  it('stops at a cyclic object', async () => {
    const main: Record<string, unknown> = pg();
    main['self'] = main;
    expect((await configError(() => resolveConfig({ databases: { main } }))).message).toContain('is nested too deeply');
  });
});

describe('secrets', () => {
  const secretUrl = `postgres://app:${CANARY}@db.internal:5432/app`;

  it.each<[string, unknown]>([
    ['url scheme mismatch', { databases: { main: { driver: 'mysql', url: secretUrl } } }],
    ['unparsable url', { databases: { main: { driver: 'pg', url: `postgres://app:${CANARY}@h:notaport/db` } } }],
    ['url together with host and a bad max', { databases: { main: { driver: 'pg', url: secretUrl, host: 'h', max: 0 } } }],
    ['password with url', { databases: { main: { driver: 'pg', url: secretUrl, password: CANARY } } }],
    ['password of the wrong type', { databases: { main: pg({ password: [CANARY] }) } }],
    ['malformed ${ in a password', { databases: { main: pg({ password: `${CANARY}\${oops` }) } }],
    ['unknown key holding a secret', { databases: { main: pg({ passwd: CANARY }) } }],
    ['url from env with a wrong scheme', { databases: { main: { driver: 'mysql', url: '${TB_TEST_URL}' } } }],
    ['url key misplaced in a class', { databases: { main: pg() }, classes: { U: { database: 'main', table: 't', key: 'id', attributes: ['id'], url: secretUrl } } }],
  ])('never echo a secret: %s', async (_what, input) => {
    process.env['TB_TEST_URL'] = secretUrl;
    const err = await configError(() => resolveConfig(input));
    expect(err.message).not.toContain(CANARY);
  });

  it('never echo a secret from a file, also when JSON5 fails on it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tb-config-'));
    try {
      const file = join(dir, 'unquoted.json5');
      writeFileSync(file, `{ databases: { main: { driver: 'pg', host: 'h', password: ${CANARY} } } }`);
      const err = await configError(() => loadConfig(file));
      expect(err.message).toMatch(/unquoted\.json5:1:\d+: invalid JSON5/);
      for (const f of ['url-scheme.json5', 'user-with-url.json5']) await configError(() => loadConfig(fixture(f)));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('hides url and password from inspect, JSON, spread and structured clone', async () => {
    const c = resolveConfig({ databases: { main: { driver: 'pg', url: secretUrl }, other: pg({ password: CANARY }) } });
    expect(c.databases['main']?.url).toBe(secretUrl);
    expect(c.databases['other']?.password).toBe(CANARY);
    const shown = [
      util.inspect(c, { depth: null }), util.inspect(c, { depth: null, showHidden: true }), String(c.databases['main']),
      JSON.stringify(c), JSON.stringify({ ...c.databases['main'] }), JSON.stringify(structuredClone(c)),
      util.format('%o %O %j', c, c, c),
    ];
    for (const s of shown) expect(s).not.toContain(CANARY);
    expect(Object.keys(c.databases['other'] ?? {})).not.toContain('password');
    const loaded = await loadConfig(fixture('good.json5'));
    expect(util.inspect(loaded, { depth: null }) + JSON.stringify(loaded)).not.toContain(MYSQL_PASSWORD);
  });
});

describe('JSON Schema', () => {
  it('describes the input config for editors', () => {
    // JSON Schema is a loose tree; walk it through one narrow type.
    type Tree = { [k: string]: Tree } & { length?: number };
    const s = configJsonSchema() as unknown as Tree;
    expect(s['$schema']).toMatch(/json-schema\.org/);
    expect(s['title']).toBe('threadbroker config');
    expect(s['description']).toBeTruthy();
    expect(s['additionalProperties']).toBe(false);
    expect(s['required']).toEqual(['databases']);
    const db = s['properties'].databases;
    expect(db.minProperties).toBe(1);
    expect(db.propertyNames.pattern).toBe('^[A-Za-z_][A-Za-z0-9_]{0,62}$');
    expect(db.additionalProperties.additionalProperties).toBe(false);
    expect(db.additionalProperties.properties.max).toMatchObject({ type: 'integer', minimum: 1, maximum: 10000 });
    expect(db.additionalProperties.oneOf).toHaveLength(3);
    expect(s['properties'].classes.additionalProperties.required).toEqual(['database', 'table', 'key', 'attributes']);
  });

  it('is written by the emit script', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tb-schema-'));
    try {
      const out = emitSchema(join(dir, 'config.schema.json'));
      expect(JSON.parse(readFileSync(out, 'utf8'))).toEqual(configJsonSchema());
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('helpers', () => {
  it('formats key paths in dotted form', () => {
    expect(formatPath(['databases', 'main', 'max'])).toBe('databases.main.max');
    expect(formatPath(['classes', 'O', 'attributes', 2])).toBe('classes.O.attributes[2]');
    expect(formatPath(['databases', 'my db'])).toBe('databases["my db"]');
    expect(formatPath([])).toBe('config');
  });

  it('freezes DEFAULTS and computes maxReserved from max', () => {
    expect(Object.isFrozen(DEFAULTS) && Object.isFrozen(DEFAULTS.database) && Object.isFrozen(DEFAULTS.reservations)).toBe(true);
    expect(DEFAULTS.database.maxReserved(10)).toBe(9);
    expect(DEFAULTS.reservations).toEqual({ idleTimeoutMillis: 30000, maxLifetimeMillis: 300000, housekeepingMillis: 1000 });
  });
});

function pick<T extends object, K extends keyof T>(o: T, ...keys: K[]): Pick<T, K> {
  return Object.fromEntries(keys.map((k) => [k, o[k]])) as Pick<T, K>;
}
