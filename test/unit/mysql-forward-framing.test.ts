/**
 * Issue 8: the broker's framing of forwarded MySQL answers (drivers/mysql/mysql-forward.ts) on a
 * scripted socket: what it writes, where each answer ends (EOF vs a row that starts with 0xFE,
 * 16 MiB continuation packets, more results), the status it reads, its limits, and that mysql2
 * gets every byte between statements and none of an answer. The real server: mysql-forward.test.ts.
 */
import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import { describe, expect, it } from 'vitest';
import type { StatementLimits } from '../../src/drivers/driver.js';
import { MysqlForwarder, framed, type ForwardedAnswer, type MysqlForwardHost } from '../../src/drivers/mysql/mysql-forward.js';
import { BrokerError } from '../../src/errors.js';

/** A socket whose reads the test delivers and whose writes it records. */
class ScriptedSocket extends EventEmitter {
  /** One entry per write reaching the network: writes made while corked are one. */
  readonly written: Buffer[] = [];
  #corked = 0;
  #held: Buffer[] = [];
  write(b: Uint8Array): boolean {
    if (this.#corked > 0) this.#held.push(Buffer.from(b));
    else this.written.push(Buffer.from(b));
    return true;
  }
  cork(): void {
    this.#corked++;
  }
  uncork(): void {
    if (--this.#corked === 0 && this.#held.length > 0) {
      this.written.push(Buffer.concat(this.#held));
      this.#held = [];
    }
  }
}

/** One packet: 3-byte length, sequence id, payload. */
function pkt(seq: number, payload: Buffer | number[]): Buffer {
  const body = Buffer.isBuffer(payload) ? payload : Buffer.from(payload);
  const head = Buffer.from([body.length & 0xff, (body.length >> 8) & 0xff, (body.length >> 16) & 0xff, seq]);
  return Buffer.concat([head, body]);
}
const u16 = (n: number): number[] => [n & 0xff, n >> 8];
const IN_TRANS = 1;
const AUTOCOMMIT = 2;
const MORE = 8;
const ok = (seq: number, status = AUTOCOMMIT, affected = 0): Buffer => pkt(seq, [0x00, affected, 0, ...u16(status), 0, 0]);
const eof = (seq: number, status = AUTOCOMMIT): Buffer => pkt(seq, [0xfe, 0, 0, ...u16(status)]);
const err = (seq: number, errno: number): Buffer => pkt(seq, Buffer.concat([Buffer.from([0xff, ...u16(errno)]), Buffer.from('#42000bad')]));
const column = (seq: number, name: string): Buffer => pkt(seq, Buffer.concat([
  ...['def', 'test', 't', 't', name, name].map((s) => Buffer.concat([Buffer.from([s.length]), Buffer.from(s)])),
  Buffer.from([0x0c, 45, 0, 0, 1, 0, 0, 253, 0, 0, 0, 0, 0]),
]));
const textRow = (seq: number, values: string[]): Buffer => pkt(seq, Buffer.concat(values.map((v) => Buffer.concat([Buffer.from([v.length]), Buffer.from(v)]))));

/** A one-column result set: count, definition, EOF, rows, EOF. */
function resultSet(rows: string[], status = AUTOCOMMIT): Buffer {
  let seq = 1;
  return Buffer.concat([pkt(seq++, [1]), column(seq++, 'a'), eof(seq++), ...rows.map((r) => textRow(seq++, [r])), eof(seq++, status)]);
}

/** A COM_QUERY as the thread sends it (4 header bytes left zero). */
const query = (sql: string): { sql: string; msg: Uint8Array } => ({ sql, msg: new Uint8Array(Buffer.concat([Buffer.alloc(4), Buffer.from([0x03]), Buffer.from(sql)])) });

const NO_LIMITS: StatementLimits = { queryTimeoutMillis: 0, maxRows: 0, maxResultBytes: 0, connectTimeoutMillis: 1000 };

function setup(limits: StatementLimits = NO_LIMITS) {
  const socket = new ScriptedSocket();
  const toMysql2: Buffer[] = [];
  socket.on('data', (b: Buffer) => toMysql2.push(Buffer.from(b)));
  const state = { inTransaction: false, autocommitOff: false, broken: false, aborted: undefined as BrokerError | undefined, tracked: new Set<(e: BrokerError) => void>() };
  const host: MysqlForwardHost = {
    isBroken: () => state.broken,
    setStatus: (t, a) => {
      state.inTransaction = t;
      state.autocommitOff = a;
    },
    abort: (e) => {
      state.broken = true;
      state.aborted = e;
      // As MysqlConnection: what still waits on the session fails with CONNECTION_LOST.
      for (const f of [...state.tracked]) f(new BrokerError('CONNECTION_LOST', e.message, { database: 'db' }));
    },
    track: (fail) => {
      state.tracked.add(fail);
      return () => state.tracked.delete(fail);
    },
  };
  const fwd = new MysqlForwarder(socket as unknown as Duplex, host, 'db', limits);
  return { socket, toMysql2, state, fwd };
}

const bytesOf = (a: ForwardedAnswer): Buffer => Buffer.from(a.bytes);
const codeOf = (p: Promise<unknown>): Promise<string> => p.then(() => 'resolved', (e: BrokerError) => e.code);

describe('MysqlForwarder framing', () => {
  it("takes over mysql2's data listener: mysql2 gets the traffic between statements, none of an answer", async () => {
    const { socket, toMysql2, fwd } = setup();
    expect(socket.listeners('data')).toHaveLength(1);
    socket.emit('data', ok(1));
    expect(toMysql2).toHaveLength(1);
    const answer = resultSet(['1', '2']);
    const p = fwd.forward([query('select a from t')])[0];
    socket.emit('data', answer);
    expect(bytesOf(await p)).toEqual(answer);
    expect(toMysql2).toHaveLength(1);
    socket.emit('data', ok(1));
    expect(toMysql2).toHaveLength(2);
  });

  it('writes the header (length, sequence 0) and, for an execute, the statement id', () => {
    const { socket, fwd } = setup();
    const exec = new Uint8Array([0, 0, 0, 0, 0x17, 0, 0, 0, 0, 0, 1, 0, 0, 0]);
    void fwd.forward([query('select 1'), { sql: 'select ?', msg: exec, statementId: 0x01020304 }]);
    expect(socket.written).toHaveLength(1); // one write for the batch
    const w = socket.written[0];
    expect([...w.subarray(0, 4)]).toEqual([9, 0, 0, 0]);
    expect(w.subarray(5, 13).toString()).toBe('select 1');
    expect([...w.subarray(13, 17)]).toEqual([10, 0, 0, 0]);
    expect([...w.subarray(17, 22)]).toEqual([0x17, 4, 3, 2, 1]);
  });

  it('refuses what is not a COM_QUERY or a COM_STMT_EXECUTE with its statement id', async () => {
    const { socket, fwd } = setup();
    const [a, b] = fwd.forward([{ sql: 'x', msg: new Uint8Array([0, 0, 0, 0, 0x0e]) }, { sql: 'y', msg: new Uint8Array([0, 0, 0, 0, 0x17, 0, 0, 0, 0]) }]);
    expect(await codeOf(a)).toBe('INVALID_ARGUMENT');
    expect(await codeOf(b)).toBe('INVALID_ARGUMENT');
    expect(socket.written).toHaveLength(0);
  });

  it('finds the end of each answer whatever the reads: byte by byte, and pipelined answers in one read', async () => {
    const { socket, fwd } = setup();
    const answers = [resultSet(['x', 'yy', '']), ok(1, AUTOCOMMIT, 3), err(1, 1146), resultSet([])];
    const ps = fwd.forward(answers.map(() => query('select a from t')));
    const all = Buffer.concat(answers);
    for (let i = 0; i < all.length; i++) socket.emit('data', all.subarray(i, i + 1));
    const got = await Promise.all(ps);
    expect(got.map(bytesOf)).toEqual(answers);
    expect(got.map((a) => a.errno)).toEqual([undefined, undefined, 1146, undefined]);
    const again = fwd.forward(answers.map(() => query('select a from t')));
    socket.emit('data', all);
    expect((await Promise.all(again)).map(bytesOf)).toEqual(answers);
  });

  it('reads on past a result whose status says more results follow (CALL, multi-results), and ends at the last', async () => {
    const { socket, fwd } = setup();
    const answer = Buffer.concat([resultSet(['1'], AUTOCOMMIT | MORE), resultSet(['2'], AUTOCOMMIT | MORE), ok(7)]);
    const p = fwd.forward([query('call p()')])[0];
    socket.emit('data', answer);
    expect(bytesOf(await p)).toEqual(answer);
  });

  it('tells a row that starts with 0xFE (a first value of 2^24 bytes or more) from an EOF, and reads continuation packets as data', async () => {
    const { socket, fwd } = setup();
    // A row of one 16 MiB value: payload 0xFE + 8-byte length + data, split at 2^24 − 1 bytes; the
    // continuation starts with 0xFF and 0xFE bytes, which must not be read as ERR or EOF.
    const valueLength = 0xffffff + 2;
    const payload = Buffer.alloc(9 + valueLength, 0x61);
    payload[0] = 0xfe;
    payload.writeBigUInt64LE(BigInt(valueLength), 1);
    payload[0xffffff] = 0xff;
    payload[0xffffff + 1] = 0xfe;
    const first = pkt(4, payload.subarray(0, 0xffffff));
    const rest = pkt(5, payload.subarray(0xffffff));
    expect(rest.length - 4).toBeLessThan(0xffffff);
    const answer = Buffer.concat([pkt(1, [1]), column(2, 'a'), eof(3), first, rest, eof(6)]);
    const p = fwd.forward([query('select repeat(...)')])[0];
    for (let i = 0; i < answer.length; i += 1 << 20) socket.emit('data', answer.subarray(i, i + (1 << 20)));
    // Buffer#equals: toEqual would walk 16 MiB of indices.
    expect(bytesOf(await p).equals(answer)).toBe(true);
  });

  it('records the transaction status from the last OK or EOF', async () => {
    const { socket, state, fwd } = setup();
    let p = fwd.forward([query('begin')])[0];
    socket.emit('data', ok(1, AUTOCOMMIT | IN_TRANS));
    await p;
    expect(state).toMatchObject({ inTransaction: true, autocommitOff: false });
    p = fwd.forward([query('select a from t')])[0];
    socket.emit('data', resultSet(['1'], IN_TRANS));
    await p;
    expect(state).toMatchObject({ inTransaction: true, autocommitOff: true });
    p = fwd.forward([query('commit')])[0];
    socket.emit('data', ok(1, AUTOCOMMIT));
    await p;
    expect(state).toMatchObject({ inTransaction: false, autocommitOff: false });
  });

  it('refuses a LOCAL INFILE request with an empty packet of the next sequence id, then takes the server\'s answer', async () => {
    const { socket, fwd } = setup();
    const p = fwd.forward([query("load data local infile '/etc/passwd' into table t")])[0];
    socket.emit('data', pkt(1, Buffer.concat([Buffer.from([0xfb]), Buffer.from('/etc/passwd')])));
    expect([...socket.written[socket.written.length - 1]]).toEqual([0, 0, 0, 2]);
    socket.emit('data', err(3, 1148));
    expect((await p).errno).toBe(1148);
  });

  it('maxRows and maxResultBytes end the statement with RESULT_TOO_LARGE and the session; those behind get CONNECTION_LOST', async () => {
    for (const limits of [{ ...NO_LIMITS, maxRows: 2 }, { ...NO_LIMITS, maxResultBytes: 10 }]) {
      const { socket, state, fwd } = setup(limits);
      const [a, b] = fwd.forward([query('select a from t'), query('select 1')]);
      socket.emit('data', resultSet(['aaaa', 'bbbb', 'cccc']));
      expect(await codeOf(a)).toBe('RESULT_TOO_LARGE');
      expect(await codeOf(b)).toBe('CONNECTION_LOST');
      expect(state.aborted?.code).toBe('RESULT_TOO_LARGE');
    }
    // Within the limits: the same answer passes.
    const { socket, fwd } = setup({ ...NO_LIMITS, maxRows: 3, maxResultBytes: 15 });
    const p = fwd.forward([query('select a from t')])[0];
    socket.emit('data', resultSet(['aaaa', 'bbbb', 'cccc']));
    expect((await p).errno).toBeUndefined();
  });

  it('a statement deadline counts from the end of the answer before it', async () => {
    const { socket, state, fwd } = setup({ ...NO_LIMITS, queryTimeoutMillis: 50 });
    const [a, b] = fwd.forward([query('select 1'), query('select sleep(1)')]);
    socket.emit('data', ok(1));
    expect((await a).errno).toBeUndefined();
    expect(await codeOf(b)).toBe('QUERY_TIMEOUT');
    expect(state.aborted?.code).toBe('QUERY_TIMEOUT');
  });

  it('bytes that break the protocol end the session with CONNECTION_LOST', async () => {
    const { socket, state, fwd } = setup();
    const p = fwd.forward([query('select a from t')])[0];
    socket.emit('data', Buffer.concat([pkt(1, [1]), column(2, 'a'), textRow(3, ['1'])]));
    expect(await codeOf(p)).toBe('CONNECTION_LOST');
    expect(state.broken).toBe(true);
  });

  it('a statement on a broken session, or while others run, is refused', async () => {
    const { state, fwd } = setup();
    const first = fwd.forward([query('select 1')])[0];
    expect(await codeOf(fwd.forward([query('select 2')])[0])).toBe('INVALID_ARGUMENT');
    state.broken = true;
    for (const f of [...state.tracked]) f(new BrokerError('CONNECTION_LOST', 'gone', { database: 'db' }));
    expect(await codeOf(first)).toBe('CONNECTION_LOST');
    expect(await codeOf(fwd.forward([query('select 3')])[0])).toBe('CONNECTION_LOST');
  });
});

describe('framed', () => {
  it('fills the header of a packet below 16 MiB', () => {
    const parts = framed(new Uint8Array([9, 9, 9, 9, 0x03, 0x41]));
    expect(parts.map((p) => [...p])).toEqual([[2, 0, 0, 0, 0x03, 0x41]]);
  });

  it('splits a payload of 16 MiB − 1 or more into packets with their own headers, with an empty last one after an exact multiple', () => {
    for (const payload of [0xffffff, 0xffffff + 5, 2 * 0xffffff]) {
      const msg = new Uint8Array(4 + payload);
      for (let i = 4; i < msg.length; i++) msg[i] = i & 0xff;
      const parts = framed(msg);
      const headers = parts.filter((_, i) => i % 2 === 0).map((h) => [...h]);
      const sizes = parts.filter((_, i) => i % 2 === 1).map((b) => b.length);
      expect(sizes.reduce((a, b) => a + b, 0)).toBe(payload);
      expect(sizes.slice(0, -1).every((s) => s === 0xffffff)).toBe(true);
      expect(sizes[sizes.length - 1]).toBeLessThan(0xffffff);
      expect(headers.map((h) => h[3])).toEqual(headers.map((_, i) => i));
      expect(headers.map((h) => h[0] | (h[1] << 8) | (h[2] << 16))).toEqual(sizes);
      expect(Buffer.concat(parts.filter((_, i) => i % 2 === 1)).equals(msg.subarray(4))).toBe(true);
    }
  });
});
