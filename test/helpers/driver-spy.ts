/**
 * A spy on the database drivers the broker uses in this process (`pg`, `mysql2`): every statement
 * text it sends and every connect error, for the broker login only (RELIABILITY.md S1 "the driver
 * spy shows 0 calls", S3 "SQL text equal to a fixed template", the cap oracle's 53300 / 1226).
 * The broker runs in the test's process and imports the same driver modules, so patching their
 * prototypes sees its traffic. Two paths bypass `query` and are watched where they leave:
 * plain statements the broker forwards as protocol bytes (`PgForwarder.forward`,
 * `MysqlForwarder.forward`: every broker's, whatever its login) and MySQL statements run as
 * prepared statements (mysql2's `Execute` commands, through `addCommand`).
 */
import mysql from 'mysql2';
import pg from 'pg';
import { MysqlForwarder } from '../../dist/src/drivers/mysql/mysql-forward.js';
import { PgForwarder } from '../../dist/src/drivers/pg/pg-forward.js';
import { BROKER_USER } from './test-setup.js';

/** One statement the broker sent. */
export interface SpiedStatement {
  kind: 'pg' | 'mysql';
  sql: string;
  params: unknown[] | undefined;
}

/** One refused connect. */
export interface SpiedConnectError {
  kind: 'pg' | 'mysql';
  code: string | undefined;
  errno: number | undefined;
  message: string;
}

type Fn = (...args: unknown[]) => unknown;

/** Installs the spy; `restore()` removes it. Only sessions of `user` are recorded. */
export class DriverSpy {
  readonly statements: SpiedStatement[] = [];
  readonly connectErrors: SpiedConnectError[] = [];
  readonly #restore: (() => void)[] = [];

  constructor(user = BROKER_USER) {
    const spy = { statements: this.statements, connectErrors: this.connectErrors };
    const pgProto = pg.Client.prototype as unknown as Record<string, Fn>;
    const pgQuery = pgProto.query;
    const pgConnect = pgProto.connect;
    pgProto.query = function (this: { user?: string }, config: unknown, ...rest: unknown[]) {
      if (this.user === user) {
        const c = config as { text?: string; values?: unknown[] } | string;
        spy.statements.push({ kind: 'pg', sql: typeof c === 'string' ? c : String(c?.text), params: typeof c === 'string' ? (rest[0] as unknown[]) : c?.values });
      }
      return pgQuery.call(this, config, ...rest);
    };
    pgProto.connect = function (this: { user?: string }, ...args: unknown[]) {
      const out = pgConnect.apply(this, args) as Promise<unknown> | undefined;
      if (this.user === user && out !== undefined && typeof out.then === 'function') {
        out.then(undefined, (err: { code?: string; message?: string }) => {
          spy.connectErrors.push({ kind: 'pg', code: err?.code, errno: undefined, message: String(err?.message) });
        });
      }
      return out;
    };
    const fwdProto = PgForwarder.prototype as unknown as Record<string, Fn>;
    const fwd = fwdProto.forward;
    fwdProto.forward = function (this: unknown, batch: unknown) {
      for (const s of batch as { sql: string }[]) spy.statements.push({ kind: 'pg', sql: s.sql, params: undefined });
      return fwd.call(this, batch);
    };
    const myFwdProto = MysqlForwarder.prototype as unknown as Record<string, Fn>;
    const myFwd = myFwdProto.forward;
    myFwdProto.forward = function (this: unknown, batch: unknown) {
      for (const s of batch as { sql: string }[]) spy.statements.push({ kind: 'mysql', sql: s.sql, params: undefined });
      return myFwd.call(this, batch);
    };
    this.#restore.push(() => {
      pgProto.query = pgQuery;
      pgProto.connect = pgConnect;
      fwdProto.forward = fwd;
      myFwdProto.forward = myFwd;
    });
    const myProto = (mysql as unknown as { Connection: { prototype: Record<string, Fn> } }).Connection.prototype;
    const hadOwnQuery = Object.hasOwn(myProto, 'query');
    const hadOwnConnect = Object.hasOwn(myProto, 'connect');
    const hadOwnAddCommand = Object.hasOwn(myProto, 'addCommand');
    const myQuery = myProto.query;
    const myConnect = myProto.connect;
    const myAddCommand = myProto.addCommand;
    myProto.addCommand = function (this: { config?: { user?: string } }, cmd: unknown) {
      const c = cmd as { constructor?: { name?: string }; sql?: string; parameters?: unknown[] };
      if (this.config?.user === user && c?.constructor?.name === 'Execute') {
        spy.statements.push({ kind: 'mysql', sql: String(c.sql), params: c.parameters });
      }
      return myAddCommand.call(this, cmd);
    };
    myProto.query = function (this: { config?: { user?: string } }, options: unknown, ...rest: unknown[]) {
      if (this.config?.user === user) {
        const o = options as { sql?: string; values?: unknown[] } | string;
        spy.statements.push({ kind: 'mysql', sql: typeof o === 'string' ? o : String(o?.sql), params: typeof o === 'string' ? undefined : o?.values });
      }
      return myQuery.call(this, options, ...rest);
    };
    myProto.connect = function (this: { config?: { user?: string } }, cb?: unknown) {
      if (this.config?.user !== user || typeof cb !== 'function') return myConnect.call(this, cb);
      return myConnect.call(this, (err: { code?: string; errno?: number; message?: string } | null, ...more: unknown[]) => {
        if (err) spy.connectErrors.push({ kind: 'mysql', code: err.code, errno: err.errno, message: String(err.message) });
        return (cb as Fn)(err, ...more);
      });
    };
    this.#restore.push(() => {
      if (hadOwnQuery) myProto.query = myQuery;
      else delete myProto.query;
      if (hadOwnAddCommand) myProto.addCommand = myAddCommand;
      else delete myProto.addCommand;
      if (hadOwnConnect) myProto.connect = myConnect;
      else delete myProto.connect;
    });
  }

  /** Connect errors that mean the server-side cap refused a session (53300, 1226). */
  capRefusals(): SpiedConnectError[] {
    return this.connectErrors.filter((e) => e.code === '53300' || e.errno === 1226 || /too many connections|max_user_connections/i.test(e.message));
  }

  restore(): void {
    for (const r of this.#restore.splice(0)) r();
  }
}
