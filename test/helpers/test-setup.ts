/**
 * Connection settings for the real servers, from the environment with this machine's defaults,
 * and per-kind config builders. Integration files loop `for (const kind of KINDS)`.
 */
import type { DriverKind } from '../../src/config/types.js';

export const PG_URL = process.env.PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
export const MYSQL_URL = process.env.MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/test';

/** The kinds under test; `KINDS=pg` narrows a run. */
export const KINDS: DriverKind[] = ((process.env.KINDS ?? 'pg,mysql').split(',').map((s) => s.trim()).filter(Boolean) as DriverKind[]);

/** The URL of a kind's server, as the admin (monitor) user. */
export function urlOf(kind: DriverKind): string {
  return kind === 'pg' ? PG_URL : MYSQL_URL;
}

/** The login the broker uses in tests, so its sessions can be counted apart on the server. */
export const BROKER_USER = process.env.TB_BROKER_USER ?? 'tb_broker';

/** The URL the broker connects with in tests. */
export function brokerUrlOf(kind: DriverKind): string {
  const u = new URL(urlOf(kind));
  u.username = BROKER_USER;
  u.password = '';
  return u.href;
}

/** A one-database config object named `db` for `kind`, with overrides. */
export function configFor(kind: DriverKind, overrides: Record<string, unknown> = {}, reservations: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    databases: { db: { driver: kind, url: brokerUrlOf(kind), max: 4, ...overrides } },
    reservations: { housekeepingMillis: 50, ...reservations },
  };
}

/** The placeholder of parameter `i` (1-based) for a kind. */
export function ph(kind: DriverKind, i: number): string {
  return kind === 'pg' ? `$${i}` : '?';
}

/** SQL, run as the admin user, that counts the broker's open sessions on the server. */
export function serverCountSql(kind: DriverKind): string {
  return kind === 'pg'
    ? `select count(*)::int as n from pg_stat_activity where usename = '${BROKER_USER}'`
    : `select count(*) as n from information_schema.processlist where user = '${BROKER_USER}'`;
}
