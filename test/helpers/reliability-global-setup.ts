/**
 * Once per `npm run test:reliability`: both servers up, the broker login (as for `npm test`), the
 * MariaDB canary login (its password is the canary), no figures from an earlier run. At the end:
 * servers up again and the login's server-side caps lifted, whatever a failed test left behind.
 */
import mysql from 'mysql2/promise';
import baseSetup from './global-setup.js';
import { clearFigures } from './figures.js';
import { CANARY, CANARY_USER } from './reliability.js';
import { Admin, startServer } from './server-admin.js';
import { KINDS, MYSQL_URL } from './test-setup.js';

export default async function setup(): Promise<() => Promise<void>> {
  for (const kind of KINDS) await startServer(kind);
  await baseSetup();
  clearFigures();
  if (KINDS.includes('mysql')) {
    const c = await mysql.createConnection(MYSQL_URL);
    try {
      const db = new URL(MYSQL_URL).pathname.slice(1) || 'test';
      for (const host of ['%', 'localhost', '127.0.0.1']) {
        await c.query(`create or replace user '${CANARY_USER}'@'${host}' identified by '${CANARY}'`);
        await c.query(`grant all on \`${db}\`.* to '${CANARY_USER}'@'${host}'`);
      }
    } finally {
      await c.end();
    }
  }
  return async () => {
    for (const kind of KINDS) {
      await startServer(kind);
      const a = new Admin(kind);
      await a.capLogin(kind === 'pg' ? -1 : 0).catch(() => undefined);
      await a.close();
    }
  };
}
