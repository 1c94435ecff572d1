/**
 * `threadbroker check [config]`: validates the config, connects to every database, and reports
 * the server version, `max` against the server's own connection limit, and reachability.
 * @module
 */
import { Broker } from '../broker/broker.js';
import type { Db } from '../client/db.js';
import type { DatabaseConfig } from '../config/types.js';
import { BrokerError } from '../errors.js';

/** One database's verdict. */
export interface CheckRow {
  database: string;
  driver: string;
  ok: boolean;
  version?: string;
  max: number;
  serverLimit?: number;
  problem?: string;
}

async function probe(db: Db, c: DatabaseConfig): Promise<CheckRow> {
  const row: CheckRow = { database: c.name, driver: c.driver, ok: false, max: c.max };
  try {
    if (c.driver === 'pg') {
      const r = await db.query<{ v: string; mc: number; su: number; lim: number }>(c.name,
        "select split_part(version(), ' on ', 1) as v, current_setting('max_connections')::int as mc, current_setting('superuser_reserved_connections')::int as su, (select rolconnlimit from pg_roles where rolname = current_user) as lim");
      const { v, mc, su, lim } = r.rows[0];
      row.version = v;
      // What this login may open: the server's slots minus the superuser reserve, and its own role limit.
      row.serverLimit = lim >= 0 ? Math.min(lim, mc - su) : mc - su;
    } else {
      const r = await db.query<{ v: string; mc: number; muc: number }>(c.name, 'select version() as v, @@max_connections as mc, @@max_user_connections as muc');
      const { v, mc, muc } = r.rows[0];
      row.version = String(v);
      row.serverLimit = Number(muc) > 0 ? Math.min(Number(muc), Number(mc)) : Number(mc);
    }
    row.ok = row.serverLimit === undefined || c.max <= row.serverLimit;
    if (!row.ok) row.problem = `max ${c.max} is above what the server allows this login (${row.serverLimit})`;
  } catch (err) {
    row.problem = err instanceof BrokerError ? `${err.code}: ${err.message}` : String(err);
  }
  return row;
}

/** Runs the check; resolves to the rows, or throws the CONFIG_INVALID error. */
export async function runCheck(configPath: string): Promise<CheckRow[]> {
  const broker = await Broker.start(configPath);
  try {
    const db = broker.connect();
    const dbs = Object.values(broker.config.databases);
    return await Promise.all(dbs.map((c) => {
      const bound = c.connectTimeoutMillis + 2000;
      return Promise.race([
        probe(db, c),
        new Promise<CheckRow>((r) => setTimeout(() => r({ database: c.name, driver: c.driver, ok: false, max: c.max, problem: `no answer within ${bound}ms` }), bound).unref()),
      ]);
    }));
  } finally {
    await broker.close();
  }
}

/** Renders the rows as an aligned table. */
export function formatCheck(rows: CheckRow[]): string {
  const lines = rows.map((r) => [
    r.ok ? 'ok  ' : 'FAIL',
    r.database,
    r.driver,
    r.version ?? '-',
    `max ${r.max}${r.serverLimit !== undefined ? ` / server ${r.serverLimit}` : ''}`,
    r.problem ?? '',
  ]);
  const widths = [0, 1, 2, 3, 4].map((i) => Math.max(...lines.map((l) => l[i].length)));
  return lines.map((l) => l.map((cell, i) => (i < 5 ? cell.padEnd(widths[i]) : cell)).join('  ').trimEnd()).join('\n');
}
