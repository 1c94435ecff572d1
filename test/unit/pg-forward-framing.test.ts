/**
 * The forwarder's framing on its own, over a scripted socket: answers cut at every byte offset,
 * several answers and pg's own traffic in one read, the statement naming (Parse only when the
 * connection has not prepared the text), the limits, and the retry after a refused cached plan.
 * The server's side is written by hand with pg-protocol's serializer and message layouts.
 */
import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import { describe, expect, it } from 'vitest';
import type { StatementLimits } from '../../src/drivers/driver.js';
import { PgForwarder, type ForwardHost } from '../../src/drivers/pg/pg-forward.js';
import { decodeAnswer as decodeRows, encodeStatement } from '../../src/wire/pg-wire.js';
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

function msg(code: string, body: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head[0] = code.charCodeAt(0);
  head.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([head, body]);
}
const cstr = (s: string): Buffer => Buffer.from(`${s}\0`);
const int16 = (n: number): Buffer => { const b = Buffer.alloc(2); b.writeInt16BE(n); return b; };
const int32 = (n: number): Buffer => { const b = Buffer.alloc(4); b.writeInt32BE(n); return b; };

/** RowDescription of int4 columns. */
function rowDescription(names: string[]): Buffer {
  return msg('T', Buffer.concat([int16(names.length), ...names.map((n) => Buffer.concat([cstr(n), int32(0), int16(0), int32(23), int16(4), int32(-1), int16(0)]))]));
}
function dataRow(values: (string | null)[]): Buffer {
  return msg('D', Buffer.concat([int16(values.length), ...values.map((v) => (v === null ? int32(-1) : Buffer.concat([int32(Buffer.byteLength(v)), Buffer.from(v)])))]));
}
const parseComplete = (): Buffer => msg('1', Buffer.alloc(0));
const bindComplete = (): Buffer => msg('2', Buffer.alloc(0));
const commandComplete = (tag: string): Buffer => msg('C', cstr(tag));
const ready = (status = 'I'): Buffer => msg('Z', Buffer.from(status));
function errorResponse(code: string, text: string): Buffer {
  return msg('E', Buffer.concat([Buffer.from('SERROR\0'), Buffer.from('VERROR\0'), Buffer.from(`C${code}\0`), Buffer.from(`M${text}\0`), Buffer.from([0])]));
}

/** The thread's decoding, rows read back in column order (the assertions below compare arrays). */
function decodeAnswer(bytes: Uint8Array, db: string): { fields: string[]; rows: unknown[][]; rowCount: number } | BrokerError {
  const out = decodeRows(bytes, db);
  if (out instanceof BrokerError) return out;
  return { fields: out.fields, rows: out.rows.map((r) => out.fields.map((f) => r[f])), rowCount: out.rowCount };
}

/** A statement as the thread sends it. */
function stmt(sql: string, params?: unknown[]): { sql: string; msg: Uint8Array } {
  return { sql, msg: encodeStatement(sql, params, 'db') };
}

const NO_LIMITS: StatementLimits = { queryTimeoutMillis: 0, maxRows: 0, maxResultBytes: 0, connectTimeoutMillis: 1000 };

function setup(limits: StatementLimits = NO_LIMITS) {
  const socket = new ScriptedSocket();
  const toPg: Buffer[] = [];
  socket.on('data', (b: Buffer) => toPg.push(Buffer.from(b)));
  const prepared: Record<string, string> = {};
  const state = { status: 'I', broken: false, aborted: undefined as BrokerError | undefined, tracked: new Set<(e: BrokerError) => void>() };
  const host: ForwardHost = {
    isBroken: () => state.broken,
    preparedStatements: () => prepared,
    setTransactionStatus: (s) => { state.status = s; },
    abort: (err) => {
      state.broken = true;
      state.aborted = err;
      // As PgConnection: what still waits on the session fails with CONNECTION_LOST.
      for (const f of [...state.tracked]) f(new BrokerError('CONNECTION_LOST', err.message, { database: 'db' }));
    },
    track: (fail) => {
      state.tracked.add(fail);
      return () => state.tracked.delete(fail);
    },
  };
  const fwd = new PgForwarder(socket as unknown as Duplex, host, 'db', limits);
  return { socket, toPg, prepared, state, fwd };
}

describe('PgForwarder framing', () => {
  const answer = Buffer.concat([rowDescription(['a', 'b']), dataRow(['1', null]), dataRow(['2', '3']), commandComplete('SELECT 2'), ready()]);

  it('takes over pg\'s data listener: pg gets the traffic between statements, none of a statement\'s answer', async () => {
    const { socket, toPg, fwd } = setup();
    expect(socket.listeners('data')).toHaveLength(1);
    socket.emit('data', ready());
    expect(toPg).toHaveLength(1);
    const p = fwd.forward([stmt('select a, b from t')])[0];
    socket.emit('data', answer);
    await p;
    expect(toPg).toHaveLength(1);
  });

  it('refuses a socket that does not carry exactly pg\'s parser', () => {
    const s = new ScriptedSocket();
    expect(() => new PgForwarder(s as unknown as Duplex, {} as ForwardHost, 'db', NO_LIMITS)).toThrow(/data listeners/);
  });

  it('frames an answer cut at every byte offset, and hands bytes after it to pg', async () => {
    for (let cut = 1; cut < answer.length; cut++) {
      const { socket, fwd, toPg } = setup();
      const p = fwd.forward([stmt('select a, b from t')])[0];
      const trailing = msg('N', Buffer.from('SNOTICE\0\0'));
      socket.emit('data', answer.subarray(0, cut));
      socket.emit('data', Buffer.concat([answer.subarray(cut), trailing]));
      const got = Buffer.from(await p);
      expect(got.equals(answer)).toBe(true);
      expect(Buffer.concat(toPg).equals(trailing)).toBe(true);
      expect(fwd.busy).toBe(false);
    }
  });

  it('decodes the framed answer in the thread: rows, nulls, the command tag\'s count', async () => {
    const { socket, fwd } = setup();
    const p = fwd.forward([stmt('select a, b from t')])[0];
    for (const byte of answer) socket.emit('data', Buffer.from([byte]));
    expect(decodeAnswer(await p, 'db')).toEqual({ fields: ['a', 'b'], rows: [[1, null], [2, 3]], rowCount: 2 });
  });

  it('prepares a text once per connection: Parse + Bind on first use, Bind alone after', async () => {
    const { socket, fwd, prepared } = setup();
    const sql = 'select $1::int4 as a';
    const run = async (reply: Buffer): Promise<Buffer> => {
      const p = fwd.forward([stmt(sql, [5])])[0];
      const sent = socket.written.at(-1)!;
      socket.emit('data', reply);
      await p;
      return sent;
    };
    const first = await run(Buffer.concat([parseComplete(), bindComplete(), rowDescription(['a']), dataRow(['5']), commandComplete('SELECT 1'), ready()]));
    expect(String.fromCharCode(first[0])).toBe('P');
    const name = Object.keys(prepared)[0];
    expect(prepared[name]).toBe(sql);
    expect(first.includes(Buffer.from(`${name}\0${sql}\0`))).toBe(true);
    const second = await run(Buffer.concat([bindComplete(), rowDescription(['a']), dataRow(['5']), commandComplete('SELECT 1'), ready()]));
    expect(String.fromCharCode(second[0])).toBe('B');
    // Bind: 'B', length, portal '', then the statement's name.
    expect(second.subarray(5, 6 + name.length + 1).equals(Buffer.from(`\0${name}\0`))).toBe(true);
    expect(second.readInt32BE(1)).toBe(second.indexOf('D'.charCodeAt(0), 6 + name.length) - 1);
  });

  it('a failed Parse leaves the text unprepared', async () => {
    const { socket, fwd, prepared } = setup();
    const p = fwd.forward([stmt('selec $1', [1])])[0];
    socket.emit('data', Buffer.concat([errorResponse('42601', 'syntax error'), ready()]));
    const out = decodeAnswer(await p, 'db');
    expect(out).toBeInstanceOf(BrokerError);
    expect(out).toMatchObject({ code: 'DATABASE_ERROR', sqlState: '42601' });
    expect(Object.keys(prepared)).toHaveLength(0);
  });

  it('after a refused cached plan (0A000) outside a transaction, prepares under a new name and runs once more', async () => {
    const { socket, fwd, prepared } = setup();
    const sql = 'select * from t where id = $1';
    const p1 = fwd.forward([stmt(sql, [1])])[0];
    socket.emit('data', Buffer.concat([parseComplete(), bindComplete(), rowDescription(['id']), dataRow(['1']), commandComplete('SELECT 1'), ready()]));
    await p1;
    const oldName = Object.keys(prepared)[0];
    const p2 = fwd.forward([stmt(sql, [1])])[0];
    const before = socket.written.length;
    socket.emit('data', Buffer.concat([errorResponse('0A000', 'cached plan must not change result type'), ready()]));
    expect(socket.written.length).toBe(before + 1);
    expect(String.fromCharCode(socket.written.at(-1)![0])).toBe('P');
    socket.emit('data', Buffer.concat([parseComplete(), bindComplete(), rowDescription(['id', 'w']), dataRow(['1', '7']), commandComplete('SELECT 1'), ready()]));
    expect(decodeAnswer(await p2, 'db')).toEqual({ fields: ['id', 'w'], rows: [[1, 7]], rowCount: 1 });
    expect(prepared[oldName]).toBeUndefined();
    expect(Object.values(prepared)).toEqual([sql]);
  });

  it('COPY … FROM STDIN is refused with CopyFail, as pg does, and the answer ends normally', async () => {
    const { socket, fwd } = setup();
    const p = fwd.forward([stmt('copy t from stdin')])[0];
    socket.emit('data', msg('G', Buffer.from([0, 0, 0])));
    expect(String.fromCharCode(socket.written.at(-1)![0])).toBe('f');
    expect(socket.written.at(-1)!.toString('latin1')).toContain('No source stream defined');
    socket.emit('data', Buffer.concat([errorResponse('57014', 'COPY from stdin failed: No source stream defined'), ready()]));
    expect(decodeAnswer(await p, 'db')).toMatchObject({ code: 'DATABASE_ERROR', sqlState: '57014' });
  });

  it('records the transaction status of every answer (a plain BEGIN leaves T)', async () => {
    const { socket, fwd, state } = setup();
    const p = fwd.forward([stmt('begin')])[0];
    socket.emit('data', Buffer.concat([commandComplete('BEGIN'), ready('T')]));
    await p;
    expect(state.status).toBe('T');
  });

  it('maxRows: the statement fails with RESULT_TOO_LARGE and the session is destroyed, before the rest arrives', async () => {
    const { socket, fwd, state } = setup({ ...NO_LIMITS, maxRows: 1 });
    const p = fwd.forward([stmt('select a, b from t')])[0];
    socket.emit('data', answer);
    await expect(p).rejects.toMatchObject({ code: 'RESULT_TOO_LARGE' });
    expect(state.broken).toBe(true);
  });

  it('maxResultBytes counts the rows as received', async () => {
    const { socket, fwd } = setup({ ...NO_LIMITS, maxResultBytes: 20 });
    const p = fwd.forward([stmt('select a, b from t')])[0];
    socket.emit('data', answer);
    await expect(p).rejects.toMatchObject({ code: 'RESULT_TOO_LARGE' });
  });

  it('a fatal server error answers with the error and ends the session', async () => {
    const { socket, fwd, state } = setup();
    const p = fwd.forward([stmt('select 1')])[0];
    socket.emit('data', Buffer.concat([errorResponse('57P01', 'terminating connection due to administrator command'), ready()]));
    expect(decodeAnswer(await p, 'db')).toMatchObject({ code: 'CONNECTION_LOST', sqlState: '57P01' });
    expect(state.broken).toBe(true);
  });

  it('a session that breaks mid-answer fails the statement with CONNECTION_LOST', async () => {
    const { socket, fwd, state } = setup();
    const p = fwd.forward([stmt('select 1')])[0];
    socket.emit('data', answer.subarray(0, 7));
    for (const fail of state.tracked) fail(new BrokerError('CONNECTION_LOST', 'gone', { database: 'db' }));
    await expect(p).rejects.toMatchObject({ code: 'CONNECTION_LOST' });
    expect(fwd.busy).toBe(false);
  });

  it('one statement at a time per connection; a closed session refuses at once', async () => {
    const { socket, fwd, state } = setup();
    const p = fwd.forward([stmt('select 1')])[0];
    await expect(fwd.forward([stmt('select 1')])[0]).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    socket.emit('data', Buffer.concat([commandComplete('SELECT 0'), ready()]));
    await p;
    state.broken = true;
    await expect(fwd.forward([stmt('select 1')])[0]).rejects.toMatchObject({ code: 'CONNECTION_LOST' });
  });
});

describe('PgForwarder pipelining', () => {
  const answerOf = (v: string): Buffer => Buffer.concat([bindComplete(), rowDescription(['a']), dataRow([v]), commandComplete('SELECT 1'), ready()]);
  const sql = 'select $1::int4 as a';

  it('writes a batch in one socket write, and answers each statement with its own answer, cut anywhere', async () => {
    const first = Buffer.concat([parseComplete(), answerOf('1')]);
    const all = Buffer.concat([first, answerOf('2'), answerOf('3')]);
    for (let cut = 1; cut < all.length; cut += 3) {
      const { socket, fwd, toPg } = setup();
      const ps = fwd.forward([stmt(sql, [1]), stmt(sql, [2]), stmt(sql, [3])]);
      expect(socket.written).toHaveLength(1);
      socket.emit('data', all.subarray(0, cut));
      socket.emit('data', all.subarray(cut));
      const answers = await Promise.all(ps);
      expect(answers.map((a) => decodeAnswer(a, 'db'))).toEqual(['1', '2', '3'].map((v) => ({ fields: ['a'], rows: [[Number(v)]], rowCount: 1 })));
      expect(toPg).toHaveLength(0);
      expect(fwd.busy).toBe(false);
    }
  });

  it('sends one Parse for a text that several statements of the batch use', () => {
    const { socket, fwd } = setup();
    fwd.forward([stmt(sql, [1]), stmt(sql, [2])]);
    const w = socket.written[0];
    let parses = 0;
    for (let i = 0; i < w.length; i += 1 + w.readInt32BE(i + 1)) if (w[i] === 0x50) parses++;
    expect(parses).toBe(1);
  });

  it('an error in one statement leaves the others alone', async () => {
    const { socket, fwd } = setup();
    const ps = fwd.forward([stmt('select 1 as a'), stmt('select 1/0'), stmt('select 3 as a')]);
    socket.emit('data', Buffer.concat([
      rowDescription(['a']), dataRow(['1']), commandComplete('SELECT 1'), ready(),
      errorResponse('22012', 'division by zero'), ready(),
      rowDescription(['a']), dataRow(['3']), commandComplete('SELECT 1'), ready(),
    ]));
    const [a, b, c] = (await Promise.all(ps)).map((x) => decodeAnswer(x, 'db'));
    expect(a).toEqual({ fields: ['a'], rows: [[1]], rowCount: 1 });
    expect(b).toMatchObject({ code: 'DATABASE_ERROR', sqlState: '22012' });
    expect(c).toEqual({ fields: ['a'], rows: [[3]], rowCount: 1 });
  });

  it('a statement behind a failed Parse of its text is prepared again and run once more', async () => {
    const { socket, fwd, prepared } = setup();
    const ps = fwd.forward([stmt(sql, [1]), stmt(sql, [2])]);
    socket.emit('data', Buffer.concat([errorResponse('53200', 'out of memory'), ready(), errorResponse('26000', 'prepared statement does not exist'), ready()]));
    expect(decodeAnswer(await ps[0], 'db')).toMatchObject({ sqlState: '53200' });
    // The second statement went again, with its Parse, at the end of the pipeline.
    expect(String.fromCharCode(socket.written.at(-1)![0])).toBe('P');
    socket.emit('data', Buffer.concat([parseComplete(), answerOf('2')]));
    expect(decodeAnswer(await ps[1], 'db')).toEqual({ fields: ['a'], rows: [[2]], rowCount: 1 });
    expect(Object.values(prepared)).toEqual([sql]);
  });

  it('a statement that leaves a transaction open with others behind it ends the session; they fail, none runs in it', async () => {
    const { socket, fwd, state } = setup();
    const ps = fwd.forward([stmt(sql, [1]), stmt(sql, [2])]);
    socket.emit('data', Buffer.concat([parseComplete(), bindComplete(), rowDescription(['a']), dataRow(['1']), commandComplete('SELECT 1'), ready('T')]));
    await ps[0];
    await expect(ps[1]).rejects.toMatchObject({ code: 'CONNECTION_LOST' });
    expect(state.broken).toBe(true);
  });

  it('a limit hit by one statement ends the session: the statements behind it fail with CONNECTION_LOST', async () => {
    const { socket, fwd } = setup({ ...NO_LIMITS, maxRows: 1 });
    const ps = fwd.forward([stmt('select a, b from t'), stmt('select 1 as a')]);
    socket.emit('data', Buffer.concat([rowDescription(['a', 'b']), dataRow(['1', '2']), dataRow(['3', '4'])]));
    await expect(ps[0]).rejects.toMatchObject({ code: 'RESULT_TOO_LARGE' });
    await expect(ps[1]).rejects.toMatchObject({ code: 'CONNECTION_LOST' });
  });
});

describe('encodeStatement', () => {
  it('refuses values that are not values (functions, symbols) and circular objects, before sending', () => {
    expect(() => encodeStatement('select $1', [() => 1], 'db')).toThrow(BrokerError);
    expect(() => encodeStatement('select $1', [Symbol('x')], 'db')).toThrow(/symbol/);
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    expect(() => encodeStatement('select $1', [circular], 'db')).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT', database: 'db' }));
  });

  it('gives each message its own exact buffer (a view of a pooled slab would clone the slab)', () => {
    const m = encodeStatement('select 1', undefined, 'db');
    expect(m.byteLength).toBe(m.buffer.byteLength);
    const b = encodeStatement('select $1', ['x'], 'db');
    expect(b.byteLength).toBe(b.buffer.byteLength);
  });
});
