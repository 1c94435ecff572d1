/**
 * mysql2 errors as `BrokerError`s: lost sessions as `CONNECTION_LOST`, server errors as
 * `DATABASE_ERROR` with their errno, SQLSTATE and the violated constraint's name.
 * @module
 */
import { BrokerError } from '../errors.js';
import { isFatalSqlState } from './sql-state.js';

/** The structural subset of a mysql2 error we read. */
export interface MysqlError {
  message: string;
  code?: string;
  errno?: number;
  sqlState?: string;
  sqlMessage?: string;
  fatal?: boolean;
}

/** Turns whatever mysql2 reported into a `BrokerError`. */
export function mysqlError(db: string, err: unknown): BrokerError {
  if (err instanceof BrokerError) return err;
  const e = err as MysqlError;
  const message = e?.sqlMessage ?? e?.message ?? String(err);
  if (e?.fatal || (e?.sqlState !== undefined && isFatalSqlState(e.sqlState)) || e?.code === 'PROTOCOL_CONNECTION_LOST') {
    return new BrokerError('CONNECTION_LOST', `connection to database ${db} lost: ${message}`, {
      errno: e?.errno, driverCode: e?.code, sqlState: e?.sqlState, database: db,
    });
  }
  return new BrokerError('DATABASE_ERROR', message, {
    errno: e?.errno, driverCode: e?.code, sqlState: e?.sqlState, constraint: constraintOf(e?.errno, message), database: db,
  });
}

/**
 * Fix: the server names the violated constraint only inside the message text, so `constraint`
 * was always missing on MySQL/MariaDB although DESIGN.md promises it for DATABASE_ERROR (pg sends
 * it as a field). Read it from the messages of the constraint errors.
 */
export function constraintOf(errno: number | undefined, message: string): string | undefined {
  switch (errno) {
    case 1062: // ER_DUP_ENTRY: "Duplicate entry '…' for key 'name'" (MySQL 8: 'table.name')
    case 1586: { // ER_DUP_ENTRY_WITH_KEY_NAME
      const key = /for key '(.*)'$/s.exec(message)?.[1];
      return key === undefined ? undefined : key.slice(key.lastIndexOf('.') + 1);
    }
    case 1451: // ER_ROW_IS_REFERENCED_2: "… a foreign key constraint fails (`db`.`t`, CONSTRAINT `name` FOREIGN KEY …"
    case 1452: // ER_NO_REFERENCED_ROW_2
    case 4025: // MariaDB ER_CONSTRAINT_FAILED: "CONSTRAINT `name` failed for `db`.`t`"
      return /CONSTRAINT `((?:[^`]|``)+)`/.exec(message)?.[1].replace(/``/g, '`');
    case 3819: // MySQL ER_CHECK_CONSTRAINT_VIOLATED: "Check constraint 'name' is violated."
      return /^Check constraint '(.*)' is violated/.exec(message)?.[1];
    default:
      return undefined;
  }
}
