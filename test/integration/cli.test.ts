import { execFile } from 'node:child_process';
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Broker } from 'threadbroker';
import { MYSQL_URL, PG_URL } from '../helpers/test-setup.js';

const CLI = fileURLToPath(new URL('../../dist/src/cli/main.js', import.meta.url));
const ROOT_CONFIG = fileURLToPath(new URL('../../config.json5', import.meta.url));

interface Run { code: number; stdout: string; stderr: string }

function cli(args: string[], cwd?: string, timeout = 90_000): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { cwd, timeout, env: { ...process.env, FORCE_COLOR: '0' } }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1;
      resolve({ code, stdout, stderr });
    });
  });
}

describe('threadbroker command line', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tb-cli-'));
  });
  afterAll(async () => {
    // As root the cluster may live outside the temp dir (see CLUSTER-LOCATION.txt); remove it too.
    const note = await readFile(join(dir, '.threadbroker', 'pg', 'CLUSTER-LOCATION.txt'), 'utf8').catch(() => '');
    const alt = /lives in (\S+)/.exec(note)?.[1];
    if (alt !== undefined && alt.startsWith('/var/tmp/threadbroker-pg/')) await rm(alt, { recursive: true, force: true });
    await rm(dir, { recursive: true, force: true });
  });

  it('has --help on the program and on every command', async () => {
    const top = await cli(['--help']);
    expect(top.code).toBe(0);
    for (const cmd of ['demo', 'check', 'stats', 'types', 'introspect']) {
      expect(top.stdout).toContain(cmd);
      const r = await cli([cmd, '--help']);
      expect(r.code, cmd).toBe(0);
      expect(r.stdout, cmd).toContain(`Usage: threadbroker ${cmd}`);
    }
  });

  it('runs the demo end to end on the embedded PostgreSQL and exits 0', async () => {
    // A fresh directory: the embedded cluster is created from nothing, as on a new machine.
    await copyFile(ROOT_CONFIG, join(dir, 'config.json5'));
    const r = await cli(['demo'], dir, 120_000);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/600 queries from 4 threads; connections open at peak: [1-4] \(max 4\); the server counted at most [1-4]/);
    expect(r.stdout).toContain('step 3 on thread');
    expect(r.stdout).toContain('rows visible after commit: 2');
    expect(r.stdout).toContain('the token now answers TOKEN_EXPIRED; rows left from the rolled-back transaction: 0');
    expect(r.stdout).toContain('close the broker');
    // The three relay steps ran on three different threads.
    const threads = [...r.stdout.matchAll(/step \d on thread (\d+)/g)].map((m) => m[1]);
    expect(new Set(threads).size).toBe(3);
  }, 150_000);

  it('check passes on a good config against the real servers', async () => {
    const file = join(dir, 'good.json5');
    await writeFile(file, `{ databases: { p: { driver: 'pg', url: '${PG_URL}', max: 4 }, m: { driver: 'mysql', url: '${MYSQL_URL}', max: 4 } } }`);
    const r = await cli(['check', file]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^ok\s+p\s+pg\s+PostgreSQL/m);
    expect(r.stdout).toMatch(/^ok\s+m\s+mysql\s+\S*MariaDB|^ok\s+m\s+mysql/m);
    expect(r.stdout).toMatch(/max 4 \/ server \d+/);
  });

  it('check exits 2 on an invalid config, naming the key and line', async () => {
    const file = join(dir, 'bad.json5');
    await writeFile(file, `{\n  databases: {\n    p: { driver: 'pg', url: '${PG_URL}', maxx: 4 },\n  },\n}\n`);
    const r = await cli(['check', file]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('CONFIG_INVALID');
    expect(r.stderr).toContain('bad.json5:3');
    expect(r.stderr).toContain('databases.p.maxx');
  });

  it('check exits 1 when a database is unreachable or max is above the server limit', async () => {
    const file = join(dir, 'down.json5');
    await writeFile(file, `{ databases: {
      up:   { driver: 'pg', url: '${PG_URL}', max: 9000 },
      down: { driver: 'pg', url: 'postgres://postgres@127.0.0.1:1/test', max: 2, connectTimeoutMillis: 500, acquireTimeoutMillis: 1000 },
    } }`);
    const r = await cli(['check', file]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^FAIL\s+up .*max 9000 is above what the server allows/m);
    expect(r.stdout).toMatch(/^FAIL\s+down/m);
  });

  it('stats shows a running broker through its loopback admin endpoint', async () => {
    const broker = await Broker.start({ databases: { p: { driver: 'pg', url: PG_URL, max: 3 } }, admin: { port: 0 } });
    try {
      await broker.connect().query('p', 'select 1');
      const url = broker.adminUrl!;
      expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      const r = await cli(['stats', '--url', url, '--count', '1']);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/^p\s+.*open\s+1\/3\s+busy\s+0\s+idle\s+1\s+waiting\s+0\s+reserved\s+0/m);
      const metrics = await (await fetch(`${url}/metrics`)).text();
      expect(metrics).toContain('threadbroker_connections_max{database="p"} 3');
    } finally {
      await broker.close();
    }
  });

  it('refuses an admin endpoint on a non-loopback address', async () => {
    await expect(Broker.start({ databases: { p: { driver: 'pg', url: PG_URL } }, admin: { port: 0, host: '0.0.0.0' } })).rejects.toMatchObject({ code: 'CONFIG_INVALID' });
  });

  it('types prints interfaces for the classes; introspect prints a classes section', async () => {
    const file = join(dir, 'classes.json5');
    await writeFile(file, `{ databases: { p: { driver: 'pg', url: '${PG_URL}', max: 2 } },
      classes: { Thing: { database: 'p', table: 'cli_things', key: 'id', attributes: ['id', 'label'] } } }`);
    const admin = await Broker.start({ databases: { p: { driver: 'pg', url: PG_URL, max: 1 } } });
    try {
      const db = admin.connect();
      await db.query('p', 'drop table if exists cli_things');
      await db.query('p', 'create table cli_things (id serial primary key, label text not null)');
      const t = await cli(['types', file]);
      expect(t.code).toBe(0);
      expect(t.stdout).toMatch(/export interface Thing \{[\s\S]*id: number;[\s\S]*label: string;/);
      const i = await cli(['introspect', file, '-d', 'p', '-t', 'cli_things']);
      expect(i.code).toBe(0);
      expect(i.stdout).toContain("table: 'cli_things'");
      expect(i.stdout).toContain("key: 'id'");
    } finally {
      await admin.connect().query('p', 'drop table if exists cli_things');
      await admin.close();
    }
  });
});
