/**
 * The one schema of the *input* config (`config.json5`): it validates in `loadConfig` and is
 * published as `config.schema.json` for editors. Issues come out as {@link ConfigProblem}s with
 * messages that never echo a `url` or `password` value nor raw control characters.
 * @module
 */

import { z } from 'zod';
import { DEFAULTS } from './defaults.js';
import type { ColumnType } from './types.js';

/** Database and class names: usable as identifiers in every language the codegen targets. */
export const NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;
const NAME_RULE = 'letters, digits and _, not starting with a digit, at most 63 characters';
/** Node fires longer timers at once (TimeoutOverflowWarning), so no timeout may exceed this. */
const MAX_TIMER = 2_147_483_647;
const COLUMN_TYPES = ['integer', 'bigint', 'numeric', 'float', 'boolean', 'text', 'date', 'timestamp', 'json', 'bytes'] as const satisfies readonly ColumnType[];
const URL_SCHEMES = { pg: ['postgres', 'postgresql'], mysql: ['mysql', 'mariadb'] } as const;
/** Keys whose values may carry credentials: never echoed in a message. */
const SECRET_KEYS = new Set(['password', 'url']);

function int(min: number, max: number, description: string) {
  const what = min === 1 ? 'a positive integer' : min === 0 ? 'a non-negative integer' : `an integer of at least ${min}`;
  const error = `must be ${what}`;
  return z.number({ error }).int({ error }).min(min, { error }).max(max, { error: `must be at most ${max}` }).describe(description);
}
const text = (description: string) => z.string({ error: 'must be a string' }).min(1, { error: 'must not be empty' }).describe(description);
const dbName = z.string().regex(NAME_PATTERN).describe(`database name: ${NAME_RULE}`);
const className = z.string().regex(NAME_PATTERN).describe(`class name: ${NAME_RULE}`);
const port = (what: string) => int(1, 65535, what);

const Embedded = z.strictObject({
  dataDir: text('Directory of the cluster files; kept across runs.'),
  port: port('TCP port on 127.0.0.1; a free one is picked when absent.').optional(),
  database: z.string().regex(NAME_PATTERN).describe('Database inside the cluster (created when missing); default "postgres". Several entries may share one dataDir with different databases.').optional(),
}).describe('A PostgreSQL cluster started and stopped by the broker (driver pg only).');

const DatabaseShape = z.strictObject({
  driver: z.enum(['pg', 'mysql'], { error: "must be 'pg' or 'mysql'" }).describe('Database kind.'),
  url: text('Connection URL: postgres:// or postgresql:// (pg), mysql:// or mariadb:// (mysql). ${ENV} allowed.').optional(),
  host: text('Server host name or address.').optional(),
  port: port('Server TCP port (with host).').optional(),
  user: text('User name (with host).').optional(),
  password: z.string({ error: 'must be a string' }).describe('Password (with host); use ${ENV}.').optional(),
  database: text('Database (schema) name (with host).').optional(),
  embedded: Embedded.optional(),
  max: int(1, 10_000, 'Hard cap of open connections (default 10).').optional(),
  acquireTimeoutMillis: int(1, MAX_TIMER, 'Longest wait for a connection before ACQUIRE_TIMEOUT (default 10000).').optional(),
  queueLimit: int(0, 10_000_000, 'Most requests that may wait for a busy connection to come back; one more fails at once with QUEUE_FULL (default 10000; 0 = never wait for a release).').optional(),
  idleTimeoutMillis: int(0, MAX_TIMER, 'An idle connection is closed after this long (default 30000; 0 = never).').optional(),
  maxLifetimeMillis: int(0, MAX_TIMER, 'A connection is retired after this long (default 1800000; 0 = never).').optional(),
  maxReserved: int(0, 9_999, 'Reservation slots, at most max - 1 (default max - 1).').optional(),
  connectTimeoutMillis: int(100, MAX_TIMER, 'Connect + authentication deadline (default 10000).').optional(),
  queryTimeoutMillis: int(0, MAX_TIMER, 'Deadline of one statement: past it the caller gets QUERY_TIMEOUT and the connection is closed, since the server may still be running it (default 0 = none). Bounds statements stuck on a dead network (no FIN, no RST).').optional(),
  maxRows: int(0, 2_147_483_647, 'Most rows one result may have; one more fails the statement with RESULT_TOO_LARGE and closes its connection to stop the transfer (default 0 = no limit).').optional(),
  maxResultBytes: int(0, Number.MAX_SAFE_INTEGER, 'Most bytes one result may take as received from the server; more fails the statement with RESULT_TOO_LARGE and closes its connection, before the main thread holds the rest (default 67108864 = 64 MiB; 0 = no limit).').optional(),
  maxRequestBytes: int(0, Number.MAX_SAFE_INTEGER, 'Most bytes a statement and its parameters may take; a larger request is refused with REQUEST_TOO_LARGE in the calling thread, before it is sent (default 67108864 = 64 MiB; 0 = no limit).').optional(),
  pipelineDepth: int(1, 64, 'With forwardStatements: most waiting SELECT statements that share one connection when it comes back, written in one socket write (default 8; 1 = one statement per connection at a time).').optional(),
  forwardStatements: z.boolean({ error: 'must be true or false' }).describe('Plain statements are encoded and decoded in the calling thread and the broker forwards protocol bytes, keeping row parsing off the main thread (default true; false = the broker runs them through pg or mysql2 itself).').optional(),
});
type DatabaseInput = z.output<typeof DatabaseShape>;

const Database = DatabaseShape.superRefine((db, ctx) => {
  const add = (path: (string | number)[], message: string) => ctx.addIssue({ code: 'custom', path, message });
  const sources = (['url', 'host', 'embedded'] as const).filter((k) => db[k] !== undefined);
  if (sources.length === 0) add([], 'needs exactly one of url, host or embedded');
  for (const extra of sources.slice(1)) add([extra], `cannot be combined with ${sources[0]}; give exactly one of url, host or embedded`);
  if (db.embedded !== undefined && db.driver !== 'pg') add(['embedded'], "is only supported with driver 'pg'");
  if (sources.length === 1 && sources[0] !== 'host') {
    for (const k of ['port', 'user', 'password', 'database'] as const) {
      if (db[k] !== undefined) add([k], `is only allowed with host, not with ${sources[0]}`);
    }
  }
  if (db.url !== undefined) {
    const allowed: readonly string[] = URL_SCHEMES[db.driver];
    const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(db.url)?.[1]?.toLowerCase();
    if (scheme === undefined || !allowed.includes(scheme)) add(['url'], `must start with ${allowed.map((s) => `${s}://`).join(' or ')} for driver '${db.driver}'`);
    else if (!URL.canParse(db.url)) add(['url'], 'is not a valid URL (percent-encode special characters in user and password)');
  }
  const max = db.max ?? DEFAULTS.database.max;
  if (db.maxReserved !== undefined && db.maxReserved > max - 1) {
    add(['maxReserved'], `must be at most max - 1 = ${max - 1}${db.max === undefined ? ' (max defaults to 10)' : ''}; one connection always stays free for plain queries`);
  }
  checkIdleVsLifetime(db, DEFAULTS.database, add);
});

/** idle > lifetime would make the idle timer dead code, which is almost surely a typo. */
function checkIdleVsLifetime(
  v: { idleTimeoutMillis?: number | undefined; maxLifetimeMillis?: number | undefined },
  d: { idleTimeoutMillis: number; maxLifetimeMillis: number },
  add: (path: string[], message: string) => void,
): void {
  const idle = v.idleTimeoutMillis ?? d.idleTimeoutMillis;
  const life = v.maxLifetimeMillis ?? d.maxLifetimeMillis;
  if (idle === 0 || life === 0 || idle <= life) return;
  const dflt = (given: number | undefined) => (given === undefined ? ', the default' : '');
  if (v.idleTimeoutMillis !== undefined) add(['idleTimeoutMillis'], `(${idle}) must not exceed maxLifetimeMillis (${life}${dflt(v.maxLifetimeMillis)})`);
  else add(['maxLifetimeMillis'], `(${life}) must not be below idleTimeoutMillis (${idle}${dflt(v.idleTimeoutMillis)})`);
}

const Reservations = z.strictObject({
  idleTimeoutMillis: int(0, MAX_TIMER, 'A reservation unused this long is rolled back and freed (default 30000; 0 = never).').optional(),
  maxLifetimeMillis: int(0, MAX_TIMER, 'A reservation is rolled back and freed this long after it was taken (default 300000; 0 = never).').optional(),
  housekeepingMillis: int(10, MAX_TIMER, 'How often leases are checked (default 1000).').optional(),
}).superRefine((r, ctx) => checkIdleVsLifetime(r, DEFAULTS.reservations, (path, message) => ctx.addIssue({ code: 'custom', path, message })))
  .describe('Defaults for every reserve().');

const attrName = z.string().min(1).describe('attribute name');
const ClassShape = z.strictObject({
  database: text('The configured database the class lives in.'),
  table: text('Table name.'),
  key: text('Attribute of the primary key.'),
  version: text('Attribute of the optimistic-lock version column.').optional(),
  attributes: z.union([
    z.record(attrName, text('column name')),
    z.array(text('attribute (= column) name')).min(1, { error: 'must name at least one attribute' }),
  ]).describe('attribute -> column, or a list of names mapped to themselves.'),
  types: z.record(attrName, z.enum(COLUMN_TYPES, { error: `must be one of ${COLUMN_TYPES.join(', ')}` })).describe('attribute -> column type.').optional(),
});

const Klass = ClassShape.superRefine((c, ctx) => {
  const add = (path: (string | number)[], message: string) => ctx.addIssue({ code: 'custom', path, message });
  const attrs = Array.isArray(c.attributes) ? c.attributes : Object.keys(c.attributes);
  if (attrs.length === 0) add(['attributes'], 'must name at least one attribute');
  const seen = new Map<string, string>();
  const columns = Array.isArray(c.attributes) ? c.attributes.map((a) => [a, a] as const) : Object.entries(c.attributes);
  columns.forEach(([attr, column], i) => {
    const other = seen.get(column);
    const at = Array.isArray(c.attributes) ? i : attr;
    if (other !== undefined) add(['attributes', at], `maps to column ${show(column)} already used by attribute ${show(other)}`);
    else seen.set(column, attr);
  });
  const known = `; attributes: ${attrs.map((a) => show(a)).join(', ')}`;
  if (!attrs.includes(c.key)) add(['key'], `must be one of the attributes (got ${show(c.key)}${known})`);
  if (c.version !== undefined && !attrs.includes(c.version)) add(['version'], `must be one of the attributes (got ${show(c.version)}${known})`);
  if (c.version !== undefined && c.version === c.key) add(['version'], 'must not be the key');
  for (const t of Object.keys(c.types ?? {})) if (!attrs.includes(t)) add(['types', t], `is not an attribute of this class${known}`);
}).describe('A class mapped to a table.');

/**
 * The input schema of `config.json5`. Objects are strict: an unknown key is refused.
 *
 * ```ts
 * const r = ConfigSchema.safeParse(JSON5.parse(text)); // prefer validateConfigInput for messages
 * ```
 */
const Admin = z.strictObject({
  port: int(0, 65535, 'TCP port of the admin endpoint (0 picks a free one).'),
  host: z.enum(['127.0.0.1', '::1', 'localhost'], { error: 'must be a loopback address: 127.0.0.1, ::1 or localhost' })
    .describe('Loopback address to bind; the endpoint is never exposed beyond this machine.').optional(),
}).describe('Off unless given: an HTTP endpoint on loopback serving GET /stats (JSON) and GET /metrics (Prometheus), read by `threadbroker stats`.');

export const ConfigSchema = z.strictObject({
  $schema: z.string().describe('Editor hint; ignored.').optional(),
  admin: Admin.optional(),
  databases: z.record(dbName, Database).describe('The databases, by name.'),
  reservations: Reservations.optional(),
  classes: z.record(className, Klass).describe('Mapped classes, by name.').optional(),
}).superRefine((cfg, ctx) => {
  const names = Object.keys(cfg.databases);
  if (names.length === 0) ctx.addIssue({ code: 'custom', path: ['databases'], message: 'must name at least one database' });
  for (const [name, c] of Object.entries(cfg.classes ?? {})) {
    if (!names.includes(c.database)) {
      ctx.addIssue({ code: 'custom', path: ['classes', name, 'database'], message: `names no configured database (got ${show(c.database)}; configured: ${names.join(', ') || '(none)'})` });
    }
  }
}).meta({ title: 'threadbroker config', description: 'config.json5 of threadbroker: databases, reservation defaults and mapped classes.' });

/** The validated input config, before defaults. */
export type ConfigInput = z.output<typeof ConfigSchema>;
/** One validated `databases.<name>` entry of the input, before defaults. */
export type { DatabaseInput };

/**
 * The JSON Schema of `config.json5` (draft 2020-12), for editors; emitted as `config.schema.json`.
 *
 * ```ts
 * writeFileSync('config.schema.json', JSON.stringify(configJsonSchema(), null, 2));
 * ```
 */
export function configJsonSchema(): object {
  return z.toJSONSchema(ConfigSchema, {
    target: 'draft-2020-12',
    io: 'input',
    // Cross-field rules the zod refinements check, restated where JSON Schema can say them.
    override: ({ zodSchema, jsonSchema }) => {
      if (zodSchema === Database) {
        jsonSchema.oneOf = [{ required: ['url'] }, { required: ['host'] }, { required: ['embedded'] }];
        jsonSchema.allOf = (['pg', 'mysql'] as const).map((d) => ({
          if: { properties: { driver: { const: d } }, required: ['driver'] },
          then: {
            // A url that starts with ${ENV} is checked after interpolation, at load time.
            properties: { url: { pattern: `^((${URL_SCHEMES[d].join('|')})://|\\$\\{)` } },
            ...(d === 'mysql' ? { not: { required: ['embedded'] } } : {}),
          },
        }));
      }
      const parent = zodSchema === ConfigSchema ? jsonSchema.properties?.['databases'] : undefined;
      if (parent !== undefined && typeof parent === 'object') parent.minProperties = 1;
    },
  });
}

/** One validation problem: where (key path) and what (a message that follows the path). */
export interface ConfigProblem {
  readonly path: readonly (string | number)[];
  readonly message: string;
}

/**
 * Validates an already sanitized input; returns the value or the problems.
 *
 * ```ts
 * const r = validateConfigInput(input);
 * if (!r.ok) for (const p of r.problems) console.log(formatPath(p.path), p.message);
 * ```
 */
export function validateConfigInput(input: unknown): { ok: true; value: ConfigInput } | { ok: false; problems: ConfigProblem[] } {
  const r = ConfigSchema.safeParse(input, { error: () => 'is invalid' });
  if (r.success) return { ok: true, value: r.data };
  const problems: ConfigProblem[] = [];
  for (const issue of r.error.issues) collect(issue, [], input, problems);
  return { ok: false, problems };
}

type Issue = z.core.$ZodIssue;
const ARTICLE: Record<string, string> = { object: 'an object', record: 'an object', array: 'an array', string: 'a string', number: 'a number', boolean: 'a boolean' };

function collect(issue: Issue, prefix: readonly PropertyKey[], input: unknown, out: ConfigProblem[]): void {
  const path = [...prefix, ...issue.path].map((s) => (typeof s === 'symbol' ? String(s) : s));
  const value = valueAt(input, path);
  const secret = path.some((s) => typeof s === 'string' && SECRET_KEYS.has(s));
  const echo = () => (value === undefined || value === "" || (typeof value === "object" && value !== null) || secret ? '' : ` (got ${show(value)})`);
  if (value === undefined && (issue.code === 'invalid_type' || issue.code === 'invalid_value')) {
    out.push({ path, message: 'is required' });
    return;
  }
  switch (issue.code) {
    case 'unrecognized_keys':
      for (const key of issue.keys) out.push({ path: [...path, key], message: 'is not a known option' });
      return;
    case 'invalid_union': {
      // Report the branch whose shape matches the value, not "expected record" from the other one.
      const branch = issue.errors.find((errs) => !errs.some((e) => e.code === 'invalid_type' && e.path.length === 0));
      if (branch) for (const e of branch) collect(e, path, input, out);
      else out.push({ path, message: 'must be an object of attribute -> column, or a list of attribute names' });
      return;
    }
    case 'invalid_key': {
      const kind = path.length === 2 && path[0] === 'databases' ? 'database' : path.length === 2 && path[0] === 'classes' ? 'class' : undefined;
      out.push({ path, message: kind ? `is not a valid ${kind} name (${NAME_RULE})` : 'must not be empty' });
      return;
    }
    case 'invalid_type':
      out.push({ path, message: (issue.message === 'is invalid' ? `must be ${ARTICLE[issue.expected] ?? issue.expected}` : issue.message) + echo() });
      return;
    case 'too_small':
    case 'too_big':
    case 'invalid_value':
    case 'invalid_format':
      out.push({ path, message: (issue.message === 'is invalid' && issue.code === 'too_small' ? 'must not be empty' : issue.message) + echo() });
      return;
    default:
      out.push({ path, message: issue.message });
  }
}

function valueAt(root: unknown, path: readonly (string | number)[]): unknown {
  let v = root;
  for (const seg of path) {
    if (v === null || typeof v !== 'object' || !Object.hasOwn(v, seg)) return undefined;
    v = (v as Record<string | number, unknown>)[seg];
  }
  return v;
}

/** Characters JSON.stringify leaves raw but that can reorder or hide text on a terminal. */
const INVISIBLE = /[\u007f-\u009f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb]/g;

/**
 * A short, printable rendering of a config value for messages: strings quoted and cut at 60
 * characters, control and invisible characters escaped, objects summarized.
 */
export function show(v: unknown, limit = 60): string {
  if (typeof v === 'string') {
    const cut = v.length > limit ? `${v.slice(0, limit)}…` : v;
    return JSON.stringify(cut).replace(INVISIBLE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  }
  if (typeof v === 'number' || typeof v === 'boolean' || v === null || v === undefined) return String(v);
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'object' ? 'an object' : `a ${typeof v}`;
}

/**
 * A key path in dotted form: `databases.main.max`, `classes.Order.attributes[2]`,
 * `databases["bad name"]`.
 */
export function formatPath(path: readonly (string | number)[]): string {
  if (path.length === 0) return 'config';
  return path.map((s, i) => {
    if (typeof s === 'number') return `[${s}]`;
    if (/^[A-Za-z_$][A-Za-z0-9_$]*$/.test(s)) return i === 0 ? s : `.${s}`;
    return `[${show(s)}]`;
  }).join('');
}
