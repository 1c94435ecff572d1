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
import type { PortClient } from './port-client.js';
import { toResult, type QueryResult } from './result.js';

/** Most statement texts a thread remembers as "not forwardable" (MySQL texts the server will not prepare). */
const PLAIN_LIMIT = 256;

/** The error as it would have crossed the port: whitelisted fields only, the caller's stack. */
export function rethrowAt(err: BrokerError, site: { stack?: string }): BrokerError {
  return deserializeError(serializeError(err), site);
}

/** One thread's forwarding of plain statements, for every database that forwards. */
export class Forwarding {
  readonly #client: PortClient;
  /** MySQL texts with parameters the broker asked to get as plain queries for good. */
  readonly #plain = new Set<string>();

  constructor(client: PortClient) {
    this.#client = client;
  }

  /** Runs one plain statement on a forwarding database of kind `kind`. */
  query<R>(kind: 'pg' | 'mysql', database: string, sql: string, params: readonly unknown[] | undefined, site: { stack?: string }): Promise<QueryResult<R>> {
    const refused = this.#client.refuseOversized(database, sql, params, site);
    if (refused !== undefined) return Promise.reject(refused);
    return kind === 'pg' ? this.#pg<R>(database, sql, params, site) : this.#mysql<R>(database, sql, params, site);
  }

  #pg<R>(database: string, sql: string, params: readonly unknown[] | undefined, site: { stack?: string }): Promise<QueryResult<R>> {
    let m: Uint8Array;
    try {
      m = pgWire.encodeStatement(sql, params, database);
    } catch (err) {
      return Promise.reject(err instanceof BrokerError ? rethrowAt(err, site) : err);
    }
    return this.#client.request({ t: 'fq', db: database, sql, m }, site).then((r) => {
      const out = pgWire.decodeAnswer(r.w!, database);
      if (out instanceof BrokerError) throw rethrowAt(out, site);
      return { rows: out.rows as R[], rowCount: out.rowCount, fields: out.fields.map((name) => ({ name })) };
    });
  }

  /**
   * MySQL: a statement without parameters as COM_QUERY (text rows), one with parameters as
   * COM_STMT_EXECUTE of the statement the broker prepared for its text (binary rows). Values the
   * binary protocol cannot carry as the text protocol would, and texts the broker cannot run as
   * prepared statements, go as plain queries: the broker runs them through mysql2 as before.
   */
  #mysql<R>(database: string, sql: string, params: readonly unknown[] | undefined, site: { stack?: string }): Promise<QueryResult<R>> {
    let m: Uint8Array;
    let p: number | undefined;
    if (params === undefined || params.length === 0) {
      m = mysqlWire.encodeQuery(sql);
    } else {
      const exec = this.#plain.has(sql) ? undefined : mysqlWire.encodeExecuteRequest(params);
      if (exec === undefined) return this.#plainQuery<R>(database, sql, params, site);
      m = exec.m;
      p = exec.n;
    }
    return this.#client.request({ t: 'fq', db: database, sql, m, p }, site).then((r) => {
      if (r.q !== undefined) {
        if (r.q === 2) this.#rememberPlain(sql);
        return this.#plainQuery<R>(database, sql, params, site);
      }
      const out = mysqlWire.decodeAnswer(r.w!, database, p !== undefined);
      if (out instanceof BrokerError) throw rethrowAt(out, site);
      const res: QueryResult<R> = { rows: out.rows as R[], rowCount: out.rowCount, fields: out.fields.map((name) => ({ name })) };
      if (out.insertId !== undefined) res.insertId = out.insertId;
      return res;
    });
  }

  #plainQuery<R>(database: string, sql: string, params: readonly unknown[] | undefined, site: { stack?: string }): Promise<QueryResult<R>> {
    return this.#client.request({ t: 'q', db: database, sql, params: params as unknown[] | undefined }, site).then((r: OkReply) => toResult<R>(r));
  }

  #rememberPlain(sql: string): void {
    if (this.#plain.size >= PLAIN_LIMIT) this.#plain.delete(this.#plain.values().next().value as string);
    this.#plain.add(sql);
  }
}
