/**
 * PostgreSQL protocol work done in the calling thread (issue 8): a plain statement is encoded
 * here into protocol messages, the broker only writes them to a connection and frames the
 * server's answer (drivers/pg/pg-forward.ts), and the answer's bytes are decoded here with the same
 * type parsers the broker's `pg.Client`s use. The main thread never parses a row.
 *
 * What goes over the port: the SQL text (the broker names and prepares statements per
 * connection) and either a simple Query message (no parameters: multi-statement text works as
 * with `pg`) or a Bind + Describe + Execute + Sync sequence for the unnamed statement, which the
 * broker re-targets at its prepared statement.
 * @module
 */
import { EventEmitter } from 'node:events';
import pgProtocol from 'pg-protocol';
import pgUtils from 'pg/lib/utils.js';
import { BrokerError } from '../errors.js';
import { pgTypes, utcDateParams } from './pg-types.js';
import { pgError } from './pg-error.js';

const { serialize, parse } = pgProtocol;

/** Describe(portal '') + Execute(portal '', all rows) + Sync: the same for every statement. */
const TAIL = Buffer.concat([serialize.describe({ type: 'P', name: '' }), serialize.execute({}), serialize.sync()]);

/**
 * Encodes one plain statement. Values go through `pg`'s own `prepareValue` (so every type is
 * sent exactly as `pg` sends it); a value it cannot serialise (a circular object) is refused
 * here, before anything leaves the thread.
 *
 * ```ts
 * encodeStatement('select $1::int as x', [1], 'main'); // Bind('' → '') + Describe + Execute + Sync
 * ```
 * @throws BrokerError `INVALID_ARGUMENT` for a value `pg` cannot serialise
 */
export function encodeStatement(sql: string, params: readonly unknown[] | undefined, database: string): Uint8Array {
  if (params === undefined || params.length === 0) return own(serialize.query(sql));
  let values: unknown[];
  try {
    values = utcDateParams(params)!.map((v, i) => {
      // pg would send a function's source text; a value that cannot cross a port is refused, as on the other path.
      if (typeof v === 'function' || typeof v === 'symbol') throw new Error(`parameter ${i + 1} is a ${typeof v}, which is not a value`);
      return pgUtils.prepareValue(v);
    });
  } catch (err) {
    throw new BrokerError('INVALID_ARGUMENT', `the statement was refused before it was sent: ${(err as Error).message}`, { database });
  }
  const bind = serialize.bind({ values: values as (string | Buffer | null)[] });
  const out = new Uint8Array(bind.length + TAIL.length);
  out.set(bind, 0);
  out.set(TAIL, bind.length);
  return out;
}

/** A copy with its own exact-size ArrayBuffer: a view into a pooled buffer would clone the whole pool slab. */
function own(b: Buffer): Uint8Array {
  return new Uint8Array(b);
}

type Parser = (s: string) => unknown;
const parsers = new Map<number, Parser>();
function parserOf(oid: number): Parser {
  let p = parsers.get(oid);
  if (p === undefined) {
    p = pgTypes.getTypeParser(oid, 'text') as Parser;
    parsers.set(oid, p);
  }
  return p;
}

/** A decoded answer: the rows as the user gets them, keyed by column name, in one pass. */
export interface DecodedResult {
  fields: string[];
  rows: Record<string, unknown>[];
  rowCount: number;
}

/** One result of the answer (a multi-statement simple query has several; the last one counts, as with `pg`). */
interface Partial {
  fields: string[];
  parsers: Parser[];
  /** A column is named `__proto__`: it must become an own property, never the row's prototype. */
  hostile: boolean;
  rows: Record<string, unknown>[];
  command: string | undefined;
  rowCount: number | undefined;
}

const fresh = (): Partial => ({ fields: [], parsers: [], hostile: false, rows: [], command: undefined, rowCount: undefined });

interface Message {
  name: string;
  fields?: unknown[];
  text?: string;
}

const COMMAND = /^([A-Za-z]+)(?: (\d+))?(?: (\d+))?/;

const source = new EventEmitter();
let sink: ((m: Message) => void) | undefined;
// pg-protocol's parser reads a stream; every answer holds whole messages, so its buffer is empty between calls.
void parse(source as unknown as NodeJS.ReadableStream, (m) => sink?.(m as unknown as Message));

/**
 * Decodes the broker's forwarded answer to one statement into the rows, columns and count the
 * `pg` path gives (or the same `BrokerError` for a server error).
 */
export function decodeAnswer(bytes: Uint8Array, database: string): DecodedResult | BrokerError {
  let cur = fresh();
  let error: BrokerError | undefined;
  // As pg's Result: a new result starts at a row description or command tag that follows a completed one.
  const next = (): void => {
    if (cur.command !== undefined) cur = fresh();
  };
  sink = (m) => {
    switch (m.name) {
      case 'rowDescription': {
        next();
        const fs = m.fields as { name: string; dataTypeID: number }[];
        cur.fields = fs.map((f) => f.name);
        cur.parsers = fs.map((f) => parserOf(f.dataTypeID));
        cur.hostile = cur.fields.includes('__proto__');
        break;
      }
      case 'dataRow': {
        const raw = m.fields as (string | null)[];
        const ps = cur.parsers;
        const names = cur.fields;
        const row: Record<string, unknown> = {};
        for (let i = 0; i < raw.length; i++) {
          const v = raw[i];
          const value = v === null ? null : ps[i](v);
          if (cur.hostile) Object.defineProperty(row, names[i], { value, enumerable: true, writable: true, configurable: true });
          else row[names[i]] = value;
        }
        cur.rows.push(row);
        break;
      }
      case 'commandComplete': {
        next();
        const match = COMMAND.exec(m.text ?? '');
        cur.command = match?.[1] ?? '';
        if (match?.[3]) cur.rowCount = parseInt(match[3], 10);
        else if (match?.[2]) cur.rowCount = parseInt(match[2], 10);
        break;
      }
      case 'error':
        error ??= pgError(database, m, false);
        break;
      default:
        // parseComplete, bindComplete, noData, emptyQuery, notices, parameter status, readyForQuery
        break;
    }
  };
  try {
    source.emit('data', Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  } catch (err) {
    // As pg: a value its type parser refuses fails the statement.
    return new BrokerError('DATABASE_ERROR', (err as Error).message, { database });
  } finally {
    sink = undefined;
  }
  if (error !== undefined) return error;
  return { fields: cur.fields, rows: cur.rows, rowCount: cur.rowCount ?? cur.rows.length };
}
