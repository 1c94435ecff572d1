/**
 * The SQL of a reservation's transaction-control request, in the driver's dialect. Savepoint
 * names end up in SQL text, so only plain identifiers pass.
 * @module
 */
import { NAME_PATTERN } from '../config/schema.js';
import type { Driver } from '../drivers/driver.js';
import { Errors } from '../errors.js';
import type { TxRequest } from '../transport/protocol.js';

/**
 * The statements to run, in order, for `req`; throws `INVALID_ARGUMENT` for a bad savepoint name,
 * isolation level or operation.
 *
 * ```ts
 * txStatements(driver, { t: 'tx', id: 1, rs, op: 'savepoint', name: 's1' }); // ['SAVEPOINT "s1"']
 * ```
 */
export function txStatements(driver: Driver, req: TxRequest): string[] {
  if (req.op !== 'begin' && req.op !== 'commit' && req.op !== 'rollback' && (typeof req.name !== 'string' || !NAME_PATTERN.test(req.name))) {
    throw Errors.invalidArgument(`a savepoint name must match ${String(NAME_PATTERN)}`);
  }
  const name = req.name as string;
  try {
    switch (req.op) {
      case 'begin': return driver.beginSql({ isolation: req.isolation as never, readOnly: req.readOnly === true });
      case 'commit': return ['COMMIT'];
      case 'rollback': return ['ROLLBACK'];
      case 'savepoint': return [driver.savepointSql(name)];
      case 'release-savepoint': return [driver.releaseSavepointSql(name)];
      case 'rollback-to': return [driver.rollbackToSavepointSql(name)];
      default: throw Errors.invalidArgument(`unknown transaction operation ${String(req.op)}`);
    }
  } catch (err) {
    // The drivers check isolation levels with TypeError; callers branch on codes.
    throw err instanceof TypeError ? Errors.invalidArgument(err.message) : err;
  }
}
