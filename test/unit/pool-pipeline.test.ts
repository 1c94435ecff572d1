/**
 * Pipelining in the pool, over a scripted driver: which waiting forwarded statements share a
 * connection when it comes back (FIFO from the head, shareable ones only, at most 8, none that a
 * connection being opened will serve), and that each statement keeps its own deadline and queue
 * place. Every interleaving is driven by the script: connects and answers resolve on command.
 */
import { describe, expect, it } from 'vitest';
import type { DatabaseConfig } from '../../src/config/types.js';
import type { Driver, DriverConnection, RawResult } from '../../src/drivers/driver.js';
import { BrokerError } from '../../src/errors.js';
import { Pool } from '../../src/pool/pool.js';
import { ScriptedDialect, poolConfig } from '../helpers/pool-fakes.js';

interface Deferred<T> {
  promise: Promise<T>;
  resolve: (v: T) => void;
}
function deferred<T = void>(): Deferred<T> {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((res) => {
    resolve = res;
  });
  return { promise, resolve };
}
const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

/** A connection that records each batch it is given and answers when the script says so. */
class ScriptedConn implements DriverConnection {
  readonly serverId: number;
  broken = false;
  readonly batches: string[][] = [];
  readonly #answers: Deferred<Uint8Array>[] = [];
  constructor(readonly seq: number) {
    this.serverId = seq;
  }
  forward(batch: readonly { sql: string; msg: Uint8Array }[]): Promise<Uint8Array>[] {
    this.batches.push(batch.map((s) => s.sql));
    return batch.map((s) => {
      const d = deferred<Uint8Array>();
      this.#answers.push(d);
      return d.promise.then(() => new TextEncoder().encode(s.sql));
    });
  }
  /** Answers every statement given so far. */
  answerAll(): void {
    for (const d of this.#answers.splice(0)) d.resolve(new Uint8Array());
  }
  query(): Promise<RawResult> {
    return Promise.resolve({ fields: [], rows: [], rowCount: 0 });
  }
  needsReset(): boolean {
    return false;
  }
  async reset(): Promise<void> {}
  onBroken(): void {}
  async end(): Promise<void> {}
  destroy(): void {
    this.broken = true;
  }
}

class ScriptedDriver extends ScriptedDialect implements Driver {
  readonly kind = 'pg' as const;
  readonly conns: ScriptedConn[] = [];
  readonly #pending: Deferred<void>[] = [];
  async connect(seq: number): Promise<DriverConnection> {
    const gate = deferred();
    this.#pending.push(gate);
    await gate.promise;
    const c = new ScriptedConn(seq);
    this.conns.push(c);
    return c;
  }
  /** Lets the oldest connect in progress complete. */
  async allowConnect(): Promise<void> {
    this.#pending.shift()!.resolve();
    await turn();
  }
}

function config(over: Partial<DatabaseConfig> = {}): DatabaseConfig {
  return poolConfig({ max: 1, maxReserved: 0, forwardStatements: true, pipelineDepth: 8, ...over });
}

const MSG = new Uint8Array([0x42, 0, 0, 0, 4]);

function send(pool: Pool, sql: string, shareable = true): { sql: string; answer: Promise<string> } {
  return { sql, answer: pool.forward({ sql, msg: MSG }, undefined, shareable).then((b) => new TextDecoder().decode(b), (e: BrokerError) => e.code) };
}

/**
 * A pool whose first connection is open and has answered each of `texts` once (so the pool knows
 * their pace: fast), now busy with `head`; statements sent next wait for it.
 */
async function warmPool(texts: string[], over: Partial<DatabaseConfig> = {}): Promise<{ driver: ScriptedDriver; pool: Pool; conn: ScriptedConn; head: { sql: string; answer: Promise<string> } }> {
  const driver = new ScriptedDriver();
  const pool = new Pool(config(over), driver);
  let conn: ScriptedConn | undefined;
  for (const text of texts) {
    const warm = send(pool, text);
    // An idle connection of a full pool takes a shareable statement at the end of the run of JavaScript.
    await Promise.resolve();
    if (conn === undefined) await driver.allowConnect();
    conn = driver.conns[0];
    conn.answerAll();
    expect(await warm.answer).toBe(text);
    await turn();
  }
  conn!.batches.splice(0);
  const head = send(pool, 'head');
  await Promise.resolve();
  return { driver, pool, conn: conn!, head };
}

describe('Pool: pipelining of forwarded statements', () => {
  it('a connection coming back takes the shareable statements queued behind the head, in order, at most 8 at once', async () => {
    const texts = Array.from({ length: 11 }, (_, i) => `s${i}`);
    const { pool, conn, head } = await warmPool(texts);
    const sent = texts.map((t) => send(pool, t));
    conn.answerAll();
    expect(await head.answer).toBe('head');
    await turn();
    expect(conn.batches.slice(1)).toEqual([sent.slice(0, 8).map((s) => s.sql)]);
    conn.answerAll();
    await turn();
    expect(conn.batches[2]).toEqual(['s8', 's9', 's10']);
    conn.answerAll();
    expect(await Promise.all(sent.map((s) => s.answer))).toEqual(sent.map((s) => s.sql));
    await turn();
    expect(pool.stats()).toMatchObject({ busy: 0, idle: 1, waiting: 0 });
    await pool.close();
  });

  it('a statement that may open a transaction runs alone, and ends the group before it', async () => {
    const { pool, conn } = await warmPool(['a', 'b', 'begin', 'c', 'd']);
    const sent = [send(pool, 'a'), send(pool, 'b'), send(pool, 'begin', false), send(pool, 'c'), send(pool, 'd')];
    for (let i = 0; i < 4; i++) {
      conn.answerAll();
      await turn();
    }
    expect(conn.batches.slice(1)).toEqual([['a', 'b'], ['begin'], ['c', 'd']]);
    expect(await Promise.all(sent.map((s) => s.answer))).toEqual(['a', 'b', 'begin', 'c', 'd']);
    await pool.close();
  });

  it('only statements that would wait for a release are pipelined; connections being opened serve the others', async () => {
    const { driver, pool, conn } = await warmPool(['a', 'b', 'c', 'd'], { max: 3 });
    const sent = [send(pool, 'a'), send(pool, 'b'), send(pool, 'c'), send(pool, 'd')];
    conn.answerAll();
    await turn();
    // Four statements, three connections (two still being opened): two must wait for a release,
    // so the first connection back takes one statement along, not more.
    expect(conn.batches.slice(1)).toEqual([['a', 'b']]);
    await driver.allowConnect();
    await driver.allowConnect();
    expect(driver.conns.map((c) => c.batches.slice(c === conn ? 1 : 0))).toEqual([[['a', 'b']], [['c']], [['d']]]);
    for (const c of driver.conns) c.answerAll();
    expect(await Promise.all(sent.map((s) => s.answer))).toEqual(['a', 'b', 'c', 'd']);
    await pool.close();
  });

  it('pipelineDepth bounds a group; 1 turns sharing off', async () => {
    for (const pipelineDepth of [3, 1]) {
      const { pool, conn } = await warmPool(['s0', 's1', 's2', 's3'], { pipelineDepth });
      const sent = Array.from({ length: 4 }, (_, i) => send(pool, `s${i}`));
      for (let i = 0; i < 5; i++) {
        conn.answerAll();
        await turn();
      }
      expect(conn.batches.slice(1)).toEqual(pipelineDepth === 3 ? [['s0', 's1', 's2'], ['s3']] : [['s0'], ['s1'], ['s2'], ['s3']]);
      expect(await Promise.all(sent.map((s) => s.answer))).toEqual(['s0', 's1', 's2', 's3']);
      await pool.close();
    }
  });

  it('a text never answered before is not pipelined, nor anything behind it: its pace is unknown', async () => {
    const driver = new ScriptedDriver();
    const pool = new Pool(config(), driver);
    const sent = Array.from({ length: 4 }, (_, i) => send(pool, `s${i}`));
    await driver.allowConnect();
    const conn = driver.conns[0];
    for (let i = 0; i < 4; i++) {
      conn.answerAll();
      await turn();
    }
    expect(conn.batches).toEqual([['s0'], ['s1'], ['s2'], ['s3']]);
    expect(await Promise.all(sent.map((s) => s.answer))).toEqual(['s0', 's1', 's2', 's3']);
    await pool.close();
  });

  it('behind a slow text, a statement whose turn would come after its acquire deadline stays queued and times out there', async () => {
    const driver = new ScriptedDriver();
    const pool = new Pool(config({ acquireTimeoutMillis: 900 }), driver);
    // 'slow' was answered in ≥ 600 ms: a statement two places behind the first 'slow' of a group
    // would start after its 900 ms deadline, one place behind it before.
    const warm = send(pool, 'slow');
    await driver.allowConnect();
    const conn = driver.conns[0];
    await new Promise((r) => setTimeout(r, 600));
    conn.answerAll();
    await warm.answer;
    await turn();
    const head = send(pool, 'head');
    await Promise.resolve();
    const sent = [send(pool, 'slow'), send(pool, 'slow'), send(pool, 'slow')];
    conn.answerAll();
    expect(await head.answer).toBe('head');
    await turn();
    expect(conn.batches.slice(2)).toEqual([['slow', 'slow']]);
    const waited = performance.now();
    expect(await sent[2].answer).toBe('ACQUIRE_TIMEOUT');
    expect(performance.now() - waited).toBeGreaterThan(100);
    conn.answerAll();
    expect(await Promise.all(sent.slice(0, 2).map((s) => s.answer))).toEqual(['slow', 'slow']);
    await pool.close();
  });

  // A pool that can still open connections is not full: nothing is held for spreading there.
  it('an idle connection runs a statement alone', async () => {
    const driver = new ScriptedDriver();
    const pool = new Pool(config({ max: 2 }), driver);
    const first = send(pool, 'warm');
    await driver.allowConnect();
    driver.conns[0].answerAll();
    await first.answer;
    await turn();
    const a = send(pool, 'a');
    expect(driver.conns[0].batches.at(-1)).toEqual(['a']);
    driver.conns[0].answerAll();
    expect(await a.answer).toBe('a');
    await pool.close();
  });

  /** A full pool of two connections, both idle, that has answered each of `texts` (their pace is known). */
  async function twoIdle(texts: string[]): Promise<{ driver: ScriptedDriver; pool: Pool }> {
    const driver = new ScriptedDriver();
    const pool = new Pool(config({ max: 2 }), driver);
    const warm = [send(pool, 'open-1'), send(pool, 'open-2')];
    await driver.allowConnect();
    await driver.allowConnect();
    for (const c of driver.conns) c.answerAll();
    await Promise.all(warm.map((w) => w.answer));
    await turn();
    for (const text of texts) {
      const w = send(pool, text);
      await Promise.resolve();
      for (const c of driver.conns) c.answerAll();
      await w.answer;
      await turn();
    }
    for (const c of driver.conns) c.batches.splice(0);
    expect(pool.stats()).toMatchObject({ open: 2, idle: 2, waiting: 0 });
    return { driver, pool };
  }

  it('statements arriving together at a full pool are spread over its idle connections, an equal share each, in arrival order', async () => {
    const texts = ['s0', 's1', 's2', 's3', 's4'];
    const { driver, pool } = await twoIdle(texts);
    const sent = texts.map((t) => send(pool, t));
    // Held until the end of the current run of JavaScript, then one write per connection.
    expect(driver.conns.map((c) => c.batches.length)).toEqual([0, 0]);
    await Promise.resolve();
    const batches = driver.conns.flatMap((c) => c.batches).sort((a, b) => a[0].localeCompare(b[0]));
    expect(batches).toEqual([['s0', 's1', 's2'], ['s3', 's4']]);
    for (const c of driver.conns) c.answerAll();
    expect(await Promise.all(sent.map((s) => s.answer))).toEqual(texts);
    await turn();
    expect(pool.stats()).toMatchObject({ busy: 0, idle: 2, waiting: 0 });
    await pool.close();
  });

  it('arriving together, a text of unknown pace is not spread: what the idle connections do not take waits in the queue', async () => {
    const { driver, pool } = await twoIdle(['known']);
    const sent = [send(pool, 'new'), send(pool, 'known'), send(pool, 'known')];
    await Promise.resolve();
    // 'new' runs alone (its pace is unknown); 'known' takes the other connection with the second 'known' behind it.
    const batches = driver.conns.flatMap((c) => c.batches).sort((a, b) => b.length - a.length);
    expect(batches).toEqual([['known', 'known'], ['new']]);
    expect(pool.stats().waiting).toBe(0);
    for (const c of driver.conns) c.answerAll();
    expect(await Promise.all(sent.map((s) => s.answer))).toEqual(['new', 'known', 'known']);
    // Unknown pace at the head of a share: each takes a connection of its own, the rest queue.
    const unknown = [send(pool, 'u1'), send(pool, 'u2'), send(pool, 'u3')];
    await Promise.resolve();
    expect(driver.conns.flatMap((c) => c.batches.slice(1)).sort()).toEqual([['u1'], ['u2']]);
    expect(pool.stats().waiting).toBe(1);
    for (let k = 0; k < 2; k++) {
      for (const c of driver.conns) c.answerAll();
      await turn();
    }
    expect(await Promise.all(unknown.map((s) => s.answer))).toEqual(['u1', 'u2', 'u3']);
    await pool.close();
  });

  it('a statement that may open a transaction is never held for spreading', async () => {
    const { driver, pool } = await twoIdle(['s']);
    const alone = send(pool, 'begin', false);
    expect(driver.conns.flatMap((c) => c.batches)).toEqual([['begin']]);
    for (const c of driver.conns) c.answerAll();
    expect(await alone.answer).toBe('begin');
    await pool.close();
  });

  it('each waiting statement keeps its own deadline and counts against queueLimit', async () => {
    const driver = new ScriptedDriver();
    const pool = new Pool(config({ acquireTimeoutMillis: 40, queueLimit: 2 }), driver);
    const head = send(pool, 'head');
    await driver.allowConnect();
    const conn = driver.conns[0];
    // The connection is busy with 'head': two may wait, the third is refused at once.
    const waiting = [send(pool, 'w1'), send(pool, 'w2')];
    const refused = send(pool, 'w3');
    expect(await refused.answer).toBe('QUEUE_FULL');
    expect(await Promise.all(waiting.map((w) => w.answer))).toEqual(['ACQUIRE_TIMEOUT', 'ACQUIRE_TIMEOUT']);
    conn.answerAll();
    expect(await head.answer).toBe('head');
    // Timed-out statements were never sent.
    expect(conn.batches).toEqual([['head']]);
    await pool.close();
  });
});
