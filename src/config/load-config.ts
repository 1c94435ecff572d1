/**
 * Reads `config.json5` (or takes an object of the same shape), refuses prototype keys,
 * interpolates `${ENV}`, validates against the one schema and returns the frozen
 * {@link BrokerConfig}. Every failure is a `CONFIG_INVALID` naming the key path and, for files,
 * `file:line:column`. Secrets (`url`, `password`) are never echoed and are non-enumerable on the
 * result, so logging or serializing the config never shows them.
 * @module
 */

import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import JSON5 from 'json5';
import { Errors } from '../errors.js';
import { DEFAULTS } from './defaults.js';
import { identifierProblems } from './check-identifiers.js';
import { formatPath, show, validateConfigInput, type ConfigInput, type ConfigProblem, type DatabaseInput } from './schema.js';
import type { AdminConfig, BrokerConfig, ClassConfig, DatabaseConfig } from './types.js';

type Seg = string | number;
type Loc = { line: number; column: number };

/**
 * Loads and resolves a config from a JSON5 file (path or `file:` URL) or from a plain object.
 *
 * ```ts
 * const config = await loadConfig('config.json5');
 * config.databases.main.max; // 10 unless configured
 * ```
 * @throws BrokerError `CONFIG_INVALID` on an unreadable file, invalid JSON5 or an invalid config;
 *   `IDENTIFIER_INVALID` for a class's table, column or attribute name its driver cannot take safely
 */
export async function loadConfig(source: string | URL | object): Promise<BrokerConfig> {
  if (typeof source !== 'string' && !(source instanceof URL)) return resolveConfig(source);
  const path = typeof source === 'string' ? source : fileURLToPath(source);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'read error';
    throw Errors.configInvalid(`${clean(path)}: cannot read the config file (${clean(code)})`);
  }
  let parsed: unknown;
  try {
    parsed = JSON5.parse(text);
  } catch (err) {
    // JSON5's message quotes the offending character, which may be part of a secret: rebuild it.
    const e = err as { lineNumber?: number; columnNumber?: number; message?: string };
    const what = /end of input/.test(e.message ?? '') ? 'unexpected end of input' : 'unexpected character';
    throw Errors.configInvalid(`${clean(path)}:${e.lineNumber ?? 1}:${Math.max(1, e.columnNumber ?? 1)}: invalid JSON5: ${what}`);
  }
  // Fix (RELIABILITY.md S4): JSON5 keeps the last of two equal keys, so a second `max`, or a
  // second database of the same name, silently replaced the first. Refused, naming both lines.
  const duplicates: { path: Seg[]; again: Loc }[] = [];
  locateKeys(text, duplicates);
  if (duplicates.length > 0) {
    // Keys inside a repeated object repeat too; name the repeated object only.
    const inside = (d: { path: Seg[] }) => duplicates.some((o) => o.path.length < d.path.length && o.path.every((seg, i) => seg === d.path[i]));
    fail(duplicates.filter((d) => !inside(d)).map((d) => ({ path: d.path, message: `is given more than once (again at line ${d.again.line}, column ${d.again.column})` })), { path, text });
  }
  return resolveConfig(parsed, { path, text });
}

/**
 * Resolves a parsed config: refuses prototype keys, interpolates `${ENV}` (`$${` is a literal
 * `${`), validates, applies defaults, hides secrets and deep-freezes. With `file`, messages
 * carry `path:line:column` of the offending key.
 *
 * ```ts
 * const config = resolveConfig({ databases: { main: { driver: 'pg', url: '${DATABASE_URL}' } } });
 * ```
 * @throws BrokerError `CONFIG_INVALID`, or `IDENTIFIER_INVALID` for unsafe table/column/attribute names
 */
export function resolveConfig(input: unknown, file?: { path: string; text: string }): BrokerConfig {
  const problems: ConfigProblem[] = [];
  const sane = sanitize(input, [], problems, 0);
  if (problems.length > 0) fail(problems, file);
  const r = validateConfigInput(sane);
  if (!r.ok) fail(r.problems, file);
  // Table and column names end up in generated SQL: refused here, before any connection opens.
  const badNames = identifierProblems(r.value);
  if (badNames.length > 0) fail(badNames, file, Errors.identifierInvalid);
  return deepFreeze(build(r.value));
}

const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** Deeper than any real config; also stops a cyclic object input. */
const MAX_DEPTH = 16;

/** Copies the input into fresh plain objects: own keys only, no prototype keys, env interpolated. */
function sanitize(v: unknown, path: Seg[], problems: ConfigProblem[], depth: number): unknown {
  if (typeof v === 'string') return interpolate(v, path, problems);
  if (v === null || typeof v === 'number' || typeof v === 'boolean') return v;
  if (typeof v !== 'object') {
    problems.push({ path, message: `must be a JSON value, not ${typeof v === 'function' ? 'a function' : `a ${typeof v}`}` });
    return undefined;
  }
  if (depth > MAX_DEPTH) {
    problems.push({ path, message: 'is nested too deeply' });
    return undefined;
  }
  if (Array.isArray(v)) return v.map((item, i) => sanitize(item, [...path, i], problems, depth + 1));
  const proto = Object.getPrototypeOf(v) as unknown;
  if (proto !== Object.prototype && proto !== null) {
    problems.push({ path, message: 'must be a plain object' });
    return undefined;
  }
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(v)) {
    if (FORBIDDEN_KEYS.has(key)) {
      problems.push({ path: [...path, key], message: 'is not allowed as a key' });
      continue;
    }
    const item = (v as Record<string, unknown>)[key];
    // An object input may spread optional values: `url: undefined` means "not given".
    if (item !== undefined) out[key] = sanitize(item, [...path, key], problems, depth + 1);
  }
  return out;
}

function interpolate(s: string, path: Seg[], problems: ConfigProblem[]): string {
  if (!s.includes('${')) return s;
  let out = '';
  for (let i = 0; i < s.length;) {
    if (s.startsWith('$${', i)) {
      out += '${';
      i += 3;
    } else if (s.startsWith('${', i)) {
      const end = s.indexOf('}', i + 2);
      const name = end < 0 ? '' : s.slice(i + 2, end);
      if (!ENV_NAME.test(name)) {
        problems.push({ path, message: 'has a malformed ${NAME} reference (write $${ for a literal ${)' });
        return s;
      }
      const value = process.env[name];
      if (value === undefined) {
        problems.push({ path, message: `uses environment variable ${name}, which is not set` });
        return s;
      }
      out += value;
      i = end + 1;
    } else {
      out += s[i++];
    }
  }
  return out;
}

const MAX_SHOWN = 20;

function fail(problems: readonly ConfigProblem[], file: { path: string; text: string } | undefined, make: (message: string) => Error = Errors.configInvalid): never {
  const locs = file ? locateKeys(file.text) : undefined;
  const lines = problems.slice(0, MAX_SHOWN).map((p) => {
    const where = file && locs ? `${clean(file.path)}:${locOf(locs, p.path)}: ` : '';
    return `${where}${formatPath(p.path)} ${p.message}`;
  });
  if (problems.length > MAX_SHOWN) lines.push(`… and ${problems.length - MAX_SHOWN} more problems`);
  throw make(lines.join('\n'));
}

/** The key itself, or for a missing key the nearest enclosing key that is in the file. */
function locOf(locs: Map<string, Loc>, path: readonly Seg[]): string {
  for (let n = path.length; n > 0; n--) {
    const loc = locs.get(JSON.stringify(path.slice(0, n)));
    if (loc) return `${loc.line}:${loc.column}`;
  }
  return '1:1';
}

/** A file path fit for a message: no raw control characters. */
function clean(s: string): string {
  return show(s, 500).slice(1, -1);
}

/**
 * Maps each key path of a JSON5 text (`JSON.stringify(path)`) to the 1-based line and column of
 * its key (array elements: of the element); a key given twice in one object goes to `duplicates`. Assumes the text parsed; tracks only enough JSON5 to
 * follow the path: comments, both quote styles, unquoted keys, nesting. Lines count `\n` only,
 * columns UTF-16 units, as JSON5's own error positions do.
 */
function locateKeys(text: string, duplicates?: { path: Seg[]; again: Loc }[]): Map<string, Loc> {
  const locs = new Map<string, Loc>();
  const stack: { kind: 'object' | 'array'; path: Seg[]; key: string | undefined; index: number }[] = [];
  let i = 0;
  let line = 1;
  let lineStart = 0;
  const moveTo = (end: number) => {
    for (let j = text.indexOf('\n', i); j >= 0 && j < end; j = text.indexOf('\n', j + 1)) {
      line++;
      lineStart = j + 1;
    }
    i = end;
  };
  const stringEnd = (from: number) => {
    const q = text[from];
    let j = from + 1;
    while (j < text.length && text[j] !== q) j += text[j] === '\\' ? 2 : 1;
    return Math.min(j + 1, text.length);
  };
  while (i < text.length) {
    const c = text[i] as string;
    const top = stack[stack.length - 1];
    if (text.startsWith('//', i)) {
      const nl = text.indexOf('\n', i);
      moveTo(nl < 0 ? text.length : nl);
    } else if (text.startsWith('/*', i)) {
      const close = text.indexOf('*/', i + 2);
      moveTo(close < 0 ? text.length : close + 2);
    } else if (/\s|\ufeff/.test(c) || c === ':') {
      moveTo(i + 1);
    } else if (c === ',') {
      if (top?.kind === 'array') top.index++;
      else if (top) top.key = undefined;
      moveTo(i + 1);
    } else if (c === '}' || c === ']') {
      stack.pop();
      moveTo(i + 1);
    } else if (top?.kind === 'object' && top.key === undefined) {
      const end = c === '"' || c === "'" ? stringEnd(i) : endOfWord(text, i, /[\s:/,{}[\]]/);
      top.key = unescape(c === '"' || c === "'" ? text.slice(i + 1, end - 1) : text.slice(i, end));
      const keyPath = JSON.stringify([...top.path, top.key]);
      const loc = { line, column: i - lineStart + 1 };
      if (!locs.has(keyPath)) locs.set(keyPath, loc);
      else duplicates?.push({ path: [...top.path, top.key], again: loc });
      moveTo(end);
    } else {
      const path: Seg[] = top === undefined ? [] : [...top.path, top.kind === 'array' ? top.index : (top.key as string)];
      if (top?.kind === 'array') locs.set(JSON.stringify(path), { line, column: i - lineStart + 1 });
      if (c === '{' || c === '[') {
        stack.push({ kind: c === '{' ? 'object' : 'array', path, key: undefined, index: 0 });
        moveTo(i + 1);
      } else {
        moveTo(c === '"' || c === "'" ? stringEnd(i) : Math.max(i + 1, endOfWord(text, i, /[\s,{}[\]/]/)));
      }
    }
  }
  return locs;
}

function endOfWord(text: string, from: number, stop: RegExp): number {
  let j = from;
  while (j < text.length && !stop.test(text[j] as string)) j++;
  return j;
}

const SIMPLE_ESCAPES: Record<string, string> = { b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v', 0: '\0' };

/** Decodes JSON5 string/identifier escapes of a key, so `'max'`, `"max"` and `m\u0061x` all match. */
function unescape(raw: string): string {
  return raw.replace(/\\(?:u([0-9a-fA-F]{4})|x([0-9a-fA-F]{2})|(\r\n|[\s\S]))/g, (_m, u?: string, x?: string, ch?: string) => {
    if (u !== undefined || x !== undefined) return String.fromCharCode(parseInt((u ?? x) as string, 16));
    if (ch === '\n' || ch === '\r' || ch === '\r\n' || ch === '\u2028' || ch === '\u2029') return '';
    return SIMPLE_ESCAPES[ch as string] ?? (ch as string);
  });
}

function build(input: ConfigInput): BrokerConfig {
  const databases: Record<string, DatabaseConfig> = {};
  for (const [name, db] of Object.entries(input.databases)) databases[name] = buildDatabase(name, db);
  const classes: Record<string, ClassConfig> = {};
  for (const [name, c] of Object.entries(input.classes ?? {})) {
    const attributes = Array.isArray(c.attributes) ? Object.fromEntries(c.attributes.map((a) => [a, a])) : { ...c.attributes };
    classes[name] = {
      name, database: c.database, table: c.table, key: c.key,
      ...(c.version !== undefined ? { version: c.version } : {}),
      attributes, types: { ...c.types },
    };
  }
  const out: BrokerConfig = { databases, reservations: { ...DEFAULTS.reservations, ...input.reservations }, classes };
  if (input.admin !== undefined) (out as { admin?: AdminConfig }).admin = { port: input.admin.port, host: input.admin.host ?? '127.0.0.1' };
  return out;
}

function buildDatabase(name: string, db: DatabaseInput): DatabaseConfig {
  const d = DEFAULTS.database;
  const max = db.max ?? d.max;
  const out: DatabaseConfig = {
    name, driver: db.driver,
    ...(db.host !== undefined ? { host: db.host } : {}),
    ...(db.port !== undefined ? { port: db.port } : {}),
    ...(db.user !== undefined ? { user: db.user } : {}),
    ...(db.database !== undefined ? { database: db.database } : {}),
    ...(db.embedded !== undefined ? { embedded: { ...db.embedded } } : {}),
    max,
    acquireTimeoutMillis: db.acquireTimeoutMillis ?? d.acquireTimeoutMillis,
    queueLimit: db.queueLimit ?? d.queueLimit,
    idleTimeoutMillis: db.idleTimeoutMillis ?? d.idleTimeoutMillis,
    maxLifetimeMillis: db.maxLifetimeMillis ?? d.maxLifetimeMillis,
    maxReserved: db.maxReserved ?? d.maxReserved(max),
    connectTimeoutMillis: db.connectTimeoutMillis ?? d.connectTimeoutMillis,
    queryTimeoutMillis: db.queryTimeoutMillis ?? d.queryTimeoutMillis,
    maxRows: db.maxRows ?? d.maxRows,
    maxResultBytes: db.maxResultBytes ?? d.maxResultBytes,
    maxRequestBytes: db.maxRequestBytes ?? d.maxRequestBytes,
    forwardStatements: db.forwardStatements ?? d.forwardStatements,
    pipelineDepth: db.pipelineDepth ?? d.pipelineDepth,
  };
  // Non-enumerable getters: util.inspect, JSON.stringify, spread and structured clone skip them.
  for (const key of ['url', 'password'] as const) {
    const value = db[key];
    if (value !== undefined) Object.defineProperty(out, key, { get: () => value, enumerable: false });
  }
  // Fix (RELIABILITY.md S5): `util.inspect(config, { showHidden: true, getters: true })` (and
  // console.dir with the same options) printed the getters' values. The config renders itself
  // with the secrets masked, HikariCP style: the url keeps its host, never its password.
  Object.defineProperty(out, INSPECT, {
    enumerable: false,
    value: (_depth: number, options: object, inspect: (v: unknown, o: object) => string) => {
      const shown: Record<string, unknown> = { ...out };
      if (db.url !== undefined) shown.url = maskUrl(db.url);
      if (db.password !== undefined) shown.password = MASK;
      return inspect(shown, options);
    },
  });
  return out;
}

const INSPECT = Symbol.for('nodejs.util.inspect.custom');
const MASK = '<masked>';

/** A url with its password (and anything unparsable) masked. */
function maskUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== '') u.password = '****';
    return u.href;
  } catch {
    return MASK;
  }
}

function deepFreeze<T>(v: T): T {
  if (v !== null && typeof v === 'object' && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const key of Object.keys(v)) deepFreeze((v as Record<string, unknown>)[key]);
  }
  return v;
}
