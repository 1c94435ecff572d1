/**
 * The status-quo pool a user would create in each thread: `pg.Pool` or a mysql2 promise pool,
 * default settings, with `size` connections. Its sessions are tagged so they are never counted
 * as the broker's (pg `application_name`; on MySQL they log in as the admin user, not `tb_bench`).
 */
import pg from 'pg';
import mysql from 'mysql2/promise';

export const DIRECT_APP_NAME = 'tb_bench_direct';

/** @returns {{ query(sql: string, params?: unknown[]): Promise<number>, end(): Promise<void> }} */
export function createDirectPool(driver, url, size) {
  if (driver === 'pg') {
    const pool = new pg.Pool({ connectionString: url, max: size, application_name: DIRECT_APP_NAME });
    pool.on('error', () => undefined); // an idle client's backend went away: the pool drops it
    return {
      query: async (sql, params) => (await pool.query(sql, params)).rows.length,
      end: () => pool.end(),
    };
  }
  const pool = mysql.createPool({ uri: url, connectionLimit: size, supportBigNumbers: true });
  return {
    query: async (sql, params) => (await pool.query(sql, params))[0].length,
    end: () => pool.end(),
  };
}
