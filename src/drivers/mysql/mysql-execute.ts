/**
 * Executes prepared statements through mysql2 (issue 8). The command is mysql2's own Execute,
 * queued as its `execute` would after finding the statement, with two parts replaced: the packet
 * is encoded by `encodeExecute` (mysql2 copies an options object per typed parameter, which
 * costs microseconds per INT on Node 20), and the row parser mysql2 builds is wrapped so that the
 * packet's DATETIME and DATE readers are ours for each row (values as the text protocol gives
 * them). Those mysql2 internals are checked once, at load; without them the public `execute`
 * runs, with DATETIME read as text and converted after: the same values, more slowly.
 * @module
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import mysql from 'mysql2';
import { TYPE_DATE, TYPE_DATETIME, TYPE_TIMESTAMP, readDateTimeAsText, readDateTimeString } from '../../wire/mysql-binary-rows.js';
import type { ColumnDef, PacketReader } from '../../wire/mysql-binary-rows.js';
import { encodeExecute, toMysql2 } from '../../wire/mysql-params.js';
import type { BoundParam } from '../../wire/mysql-params.js';

/** Most prepared statements one connection keeps on the server (the oldest is closed). */
export const MYSQL_MAX_PREPARED_STATEMENTS = 64;

const CLIENT_QUERY_ATTRIBUTES = 0x08000000;

/** A row parser class as mysql2 builds them: `new Parser().next(packet, fields, options)`. */
type RowParserClass = new () => { next(packet: PacketReader, fields: unknown, options: unknown): unknown };

/** mysql2's Execute command, the part we use. */
interface ExecuteCommand {
  statement: { id: number };
  options: unknown;
  _connection: unknown;
  _executeOptions: unknown;
  start(packet: unknown, connection: MysqlInternals): unknown;
  emit(event: 'error', err: unknown): boolean;
  buildParserFromFields(fields: ColumnDef[], connection: unknown): RowParserClass;
  _setTimeout?(): void;
}
type ExecuteClass = (new (options: { sql: string; statement: PreparedStatement; values: readonly BoundParam[]; rowsAsArray: true }, cb: undefined) => ExecuteCommand)
  & { prototype: { resultsetHeader: unknown } };
type PacketClass = new (id: number, buffer: Buffer, start: number, end: number) => object;

/** The parts of a mysql2 connection the command's `start` reads. */
interface MysqlInternals {
  config: { clientFlags: number; charsetNumber: number };
  serverCapabilityFlags?: number;
  writePacket(packet: object): void;
}

/** mysql2's prepared statement (PreparedStatementInfo): one definition per placeholder. */
export interface PreparedStatement {
  readonly parameters: readonly unknown[];
}

/** The connection calls {@link executePrepared} makes. */
export interface ExecutingConnection<Q> {
  execute(options: { sql: string; values: unknown[]; rowsAsArray: true; dateStrings: true }): Q;
  addCommand(cmd: Q): unknown;
}

const require = createRequire(import.meta.url);

/** mysql2's connection options merged for one command (`ConnectionConfig.queryOptions`, exported but not typed). */
const queryOptions = (mysql as unknown as { ConnectionConfig?: { queryOptions?(config: unknown, overrides: unknown): unknown } }).ConnectionConfig?.queryOptions;

/** mysql2's internals the fast path builds on, when they are as expected (checked once, at load). */
const internals = ((): { Execute: ExecuteClass; Packet: PacketClass } | undefined => {
  try {
    const dir = path.dirname(require.resolve('mysql2'));
    const Execute = require(path.join(dir, 'lib/commands/execute.js')) as ExecuteClass & { prototype: Partial<ExecuteCommand> };
    const Packet = require(path.join(dir, 'lib/packets/packet.js')) as PacketClass & { prototype: Partial<PacketReader> & { writeHeader?: unknown } };
    const ok = typeof Execute === 'function' && typeof Execute.prototype.buildParserFromFields === 'function'
      && typeof Execute.prototype.start === 'function' && typeof Execute.prototype.resultsetHeader === 'function'
      && typeof Packet === 'function' && typeof Packet.prototype.readDateTime === 'function'
      && typeof Packet.prototype.readDateTimeString === 'function' && typeof Packet.prototype.writeHeader === 'function'
      && typeof queryOptions === 'function';
    return ok ? { Execute, Packet } : undefined;
  } catch {
    return undefined;
  }
})();

/** Charset numbers whose encoding is UTF-8 (the fast path writes strings as UTF-8). */
const UTF8_CHARSETS = new Set(Object.entries(mysql.CharsetToEncoding as unknown as Record<string, string>).filter(([, e]) => e === 'utf8').map(([n]) => Number(n)));

let fastPath = internals !== undefined;

/**
 * Whether {@link executePrepared} builds mysql2's Execute command itself (true when mysql2's
 * internals are as expected); `useFastPath(false)` forces the public `execute` (tests run both).
 *
 * ```ts
 * useFastPath(); // true on mysql2 3.24
 * ```
 */
export function useFastPath(on?: boolean): boolean {
  if (on !== undefined) fastPath = on && internals !== undefined;
  return fastPath;
}

/**
 * Queues one execution of a statement prepared on `conn` (mysql2's `prepare`) and returns the
 * streaming command; its rows then need `binaryRowsToText` (mysql-binary-rows.ts). The command is
 * mysql2's own Execute with its packet encoded by `encodeExecute` and its row parser reading
 * DATETIME and DATE cells as the text protocol gives them. Without those mysql2 internals (or
 * with a non-UTF-8 charset) it is the public `execute`, with DATETIME read as text.
 *
 * ```ts
 * const cmd = executePrepared(conn, sql, stmt, bindParams(params)!);
 * cmd.on('result', …);
 * ```
 */
export function executePrepared<Q>(conn: ExecutingConnection<Q>, sql: string, stmt: PreparedStatement, values: readonly BoundParam[]): Q {
  const native = conn as unknown as MysqlInternals;
  if (!fastPath || internals === undefined || !UTF8_CHARSETS.has(native.config.charsetNumber)) {
    return conn.execute({ sql, values: values.map(toMysql2), rowsAsArray: true, dateStrings: true });
  }
  const { Execute, Packet } = internals;
  const cmd = new Execute({ sql, statement: stmt, values, rowsAsArray: true }, undefined);
  cmd.start = function (this: ExecuteCommand, _packet: unknown, connection: MysqlInternals) {
    // Execute#start, with our packet.
    this._connection = connection;
    this.options = queryOptions!(connection.config, this._executeOptions);
    this._setTimeout?.();
    const attributes = (connection.config.clientFlags & (connection.serverCapabilityFlags ?? 0) & CLIENT_QUERY_ATTRIBUTES) !== 0;
    try {
      const buf = encodeExecute(this.statement.id, values, attributes);
      connection.writePacket(new Packet(0, buf, 0, buf.length));
    } catch (err) {
      this.emit('error', err); // as Execute#start does: the command ends, the connection lives
      return null;
    }
    return Execute.prototype.resultsetHeader;
  };
  const build = cmd.buildParserFromFields;
  cmd.buildParserFromFields = function (this: ExecuteCommand, fields, connection) {
    return datesAsText(build.call(this, fields, connection), fields);
  };
  conn.addCommand(cmd as Q);
  return cmd as Q;
}

const wrappers = new WeakMap<RowParserClass, RowParserClass>();

/**
 * The row parser mysql2 built, wrapped so that, for each row, the packet's DATETIME and DATE
 * readers are ours. mysql2 caches parsers per column layout: one wrapper per parser class.
 */
function datesAsText(Parser: RowParserClass, fields: readonly ColumnDef[]): RowParserClass {
  if (!fields.some((f) => f.columnType === TYPE_DATETIME || f.columnType === TYPE_TIMESTAMP || f.columnType === TYPE_DATE)) return Parser;
  let Wrapped = wrappers.get(Parser);
  if (Wrapped === undefined) {
    Wrapped = class DatesAsText {
      readonly #parser = new Parser();
      next(packet: PacketReader, f: unknown, options: unknown): unknown {
        packet.readDateTime = readDateTimeAsText;
        packet.readDateTimeString = readDateTimeString;
        return this.#parser.next(packet, f, options);
      }
    };
    wrappers.set(Parser, Wrapped);
  }
  return Wrapped;
}

