/**
 * Plain statements as protocol bytes (issue 8): encoded in the calling thread, forwarded by the
 * broker to one of its connections, the server's answer decoded here. The main thread frames
 * answers but parses no row. PostgreSQL: wire/pg-wire.ts; MySQL: wire/mysql-wire.ts.
 * @module
 */
import { BrokerError } from '../errors.js';
import type { OkReply } from '../transport/protocol.js';
import { deserializeError, serializeError } from '../transport/serialize-error.js';
import * as mysqlWire from '../wire/mysql-wire.js';
import * as pgWire from '../wire/pg-wire.js';
import { NO_SITE } from './call-site.js';
import type { PortClient } from './port-client.js';
import { toResult, type QueryResult } from './result.js';

/** Most statement texts a thread remembers as "not forwardable" (MySQL texts the server will not prepare). */
const PLAIN_LIMIT = 256;

/**
 * The error as it would have crossed the port: whitelisted fields only. Its stack is the
 * caller's once the public method's `atCaller` (call-site.ts) has seen it.
 */
export function asCrossed(err: BrokerError): BrokerError {
  return deserializeError(serializeError(err));
}

/** One thread's forwarding of plain statements, for every database that forwards. */
export class Forwarding {
  readonly #client: PortClient;
  /** MySQL texts with parameters the broker asked to get as plain queries for good. */
  readonly #plain = new Set<string>();

  constructor(client: PortClient) {
    this.#client = client;
  }

  /** Runs one plain statement on a forwarding database of kind `kind`; the caller gives failures its stack (`atCaller`). */
  query<R>(kind: 'pg' | 'mysql', database: string, sql: string, params: readonly unknown[] | undefined): Promise<QueryResult<R>> {
    const refused = this.#client.refuseOversized(database, sql, params, NO_SITE);
    if (refused !== undefined) return Promise.reject(refused);
    return kind === 'pg' ? this.#pg<R>(database, sql, params) : this.#mysql<R>(database, sql, params);
  }

  #pg<R>(database: string, sql: string, params: readonly unknown[] | undefined): Promise<QueryResult<R>> {
    let m: Uint8Array;
    try {
      m = pgWire.encodeStatement(sql, params, database);
    } catch (err) {
      return Promise.reject(err instanceof BrokerError ? asCrossed(err) : err);
    }
    return this.#client.request({ t: 'fq', db: database, sql, m }, NO_SITE).then((r) => {
      const out = pgWire.decodeAnswer(r.w!, database);
      if (out instanceof BrokerError) throw asCrossed(out);
      return { rows: out.rows as R[], rowCount: out.rowCount, fields: out.fields.map((name) => ({ name })) };
    });
  }

  /**
   * MySQL: a statement without parameters as COM_QUERY (text rows), one with parameters as
   * COM_STMT_EXECUTE of the statement the broker prepared for its text (binary rows). Values the
   * binary protocol cannot carry as the text protocol would, and texts the broker cannot run as
   * prepared statements, go as plain queries: the broker runs them through mysql2 as before.
   */
  #mysql<R>(database: string, sql: string, params: readonly unknown[] | undefined): Promise<QueryResult<R>> {
    let m: Uint8Array;
    let p: number | undefined;
    if (params === undefined || params.length === 0) {
      m = mysqlWire.encodeQuery(sql);
    } else {
      const exec = this.#plain.has(sql) ? undefined : mysqlWire.encodeExecuteRequest(params);
      if (exec === undefined) return this.#plainQuery<R>(database, sql, params);
      m = exec.m;
      p = exec.n;
    }
    return this.#client.request({ t: 'fq', db: database, sql, m, p }, NO_SITE).then((r) => {
      if (r.q !== undefined) {
        if (r.q === 2) this.#rememberPlain(sql);
        return this.#plainQuery<R>(database, sql, params);
      }
      const out = mysqlWire.decodeAnswer(r.w!, database, p !== undefined);
      if (out instanceof BrokerError) throw asCrossed(out);
      const res: QueryResult<R> = { rows: out.rows as R[], rowCount: out.rowCount, fields: out.fields.map((name) => ({ name })) };
      if (out.insertId !== undefined) res.insertId = out.insertId;
      return res;
    });
  }

  #plainQuery<R>(database: string, sql: string, params: readonly unknown[] | undefined): Promise<QueryResult<R>> {
    return this.#client.request({ t: 'q', db: database, sql, params: params as unknown[] | undefined }, NO_SITE).then((r: OkReply) => toResult<R>(r));
  }

  #rememberPlain(sql: string): void {
    if (this.#plain.size >= PLAIN_LIMIT) this.#plain.delete(this.#plain.values().next().value as string);
    this.#plain.add(sql);
  }
}
