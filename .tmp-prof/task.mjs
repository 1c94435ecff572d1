import { connect } from 'threadbroker/worker';
export default async function task({ mode, ms, callers, url }) {
  let n = 0;
  const end = Date.now() + ms;
  if (mode === 'brokered') {
    const db = await connect();
    await Promise.all(Array.from({ length: callers }, async () => { while (Date.now() < end) { await db.query('db', 'SELECT 1 AS x'); n++; } }));
  } else {
    const pg = (await import('pg')).default;
    const pool = new pg.Pool({ connectionString: url, max: 4 });
    await Promise.all(Array.from({ length: callers }, async () => { while (Date.now() < end) { await pool.query('SELECT 1 AS x'); n++; } }));
    await pool.end();
  }
  return n;
}
