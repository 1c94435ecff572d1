/**
 * One MySQL connection's statement bookkeeping (issue 8): the statements it prepared, least
 * recently used first and bounded, and the texts the server would not prepare, which run as text.
 * @module
 */
import type { MysqlError } from '../../wire/mysql-error.js';
import { MYSQL_MAX_PREPARED_STATEMENTS, type PreparedStatement } from './mysql-execute.js';

/** Most statement texts a connection remembers as text-only. */
const TEXT_ONLY_LIMIT = 256;

/** Prepared statements of one connection (at most MYSQL_MAX_PREPARED_STATEMENTS) and its text-only texts. */
export class PreparedStatements {
  readonly #prepared = new Map<string, PreparedStatement>();
  readonly #textOnly = new Set<string>();
  /** Refused prepares of forwarded statements, until the plain query that follows takes them. */
  readonly #refusals = new Map<string, MysqlError>();
  readonly #close: (sql: string) => void;

  /** `close` closes a statement on the server and in mysql2's cache. */
  constructor(close: (sql: string) => void) {
    this.#close = close;
  }

  /** The statement prepared for `sql`, now the most recently used; undefined when there is none. */
  use(sql: string): PreparedStatement | undefined {
    const stmt = this.#prepared.get(sql);
    if (stmt !== undefined) {
      this.#prepared.delete(sql);
      this.#prepared.set(sql, stmt);
    }
    return stmt;
  }

  /** Before preparing one more: closes the least recently used statement when the bound is reached. */
  makeRoom(): void {
    if (this.#prepared.size >= MYSQL_MAX_PREPARED_STATEMENTS) this.forget(this.#prepared.keys().next().value as string);
  }

  /** Records a statement just prepared. */
  add(sql: string, stmt: PreparedStatement): void {
    this.#prepared.set(sql, stmt);
  }

  /** Closes the statement prepared for `sql`, if any. */
  forget(sql: string): void {
    if (this.#prepared.delete(sql)) this.#close(sql);
  }

  /** The server dropped every prepared statement (a session reset): forget them without closing. */
  clearPrepared(): void {
    this.#prepared.clear();
  }

  /** True when `sql` runs as text: the server would not prepare it. */
  isTextOnly(sql: string): boolean {
    return this.#textOnly.has(sql);
  }

  /**
   * Remembers the server's refusal to prepare a forwarded `sql`: the thread sends it again as a
   * plain query, which then runs as text at once (see {@link takeRefusal}) instead of preparing again.
   */
  refused(sql: string, err: MysqlError): void {
    if (this.#refusals.size >= TEXT_ONLY_LIMIT) this.#refusals.delete(this.#refusals.keys().next().value as string);
    this.#refusals.set(sql, err);
  }

  /** The refusal {@link refused} recorded for `sql`, once. */
  takeRefusal(sql: string): MysqlError | undefined {
    const err = this.#refusals.get(sql);
    if (err !== undefined) this.#refusals.delete(sql);
    return err;
  }

  /** Remembers that `sql` runs as text, forgetting the oldest such text past the bound. */
  markTextOnly(sql: string): void {
    if (this.#textOnly.size >= TEXT_ONLY_LIMIT && !this.#textOnly.has(sql)) this.#textOnly.delete(this.#textOnly.keys().next().value as string);
    this.#textOnly.add(sql);
  }
}
