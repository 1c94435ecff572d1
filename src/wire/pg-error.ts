/**
 * `pg` errors as `BrokerError`s: shared by the broker's connections and by the calling thread,
 * which decodes forwarded answers itself (pg-wire.ts).
 * @module
 */
import { BrokerError, Errors } from '../errors.js';
import { isFatalSqlState } from './sql-state.js';

/** The structural subset of a `pg` server error we read. */
export interface PgServerError {
  message: string;
  code?: string;
  detail?: string;
  hint?: string;
  constraint?: string;
  table?: string;
  column?: string;
  schema?: string;
  position?: string;
  severity?: string;
}

/** Turns whatever `pg` threw into a `BrokerError`. Socket-level failures become `CONNECTION_LOST`. */
export function pgError(db: string, err: unknown, connectionBroken: boolean): BrokerError {
  if (err instanceof BrokerError) return err;
  const e = err as PgServerError;
  if (e && typeof e === 'object' && typeof e.code === 'string' && /^[0-9A-Z]{5}$/.test(e.code) && e.severity !== undefined) {
    const fatal = isFatalSqlState(e.code);
    return new BrokerError(fatal ? 'CONNECTION_LOST' : 'DATABASE_ERROR', e.message, {
      sqlState: e.code, driverCode: e.code, detail: e.detail, hint: e.hint, constraint: e.constraint,
      table: e.table, column: e.column, schema: e.schema, position: e.position, database: db,
    });
  }
  const message = e && typeof e.message === 'string' ? e.message : String(err);
  if (connectionBroken) return Errors.connectionLost(db, message);
  return new BrokerError('DATABASE_ERROR', message, { database: db });
}
