/**
 * threadbroker's main-thread entry: the {@link Broker}, its config types and its errors.
 *
 * ```ts
 * import { Broker, BrokerError } from 'threadbroker';
 * const broker = await Broker.start('config.json5');
 * const pool = broker.piscina({ filename: new URL('./task.js', import.meta.url).href });
 * ```
 * @module
 */
export { Broker } from './broker/broker.js';
export type { BrokerStats, DatabaseStats, StartOptions } from './broker/broker.js';
export { BrokerError, Errors } from './errors.js';
export type { ErrorCode, DatabaseErrorFields, PoolState } from './errors.js';
export { loadConfig } from './config/load-config.js';
export { configJsonSchema } from './config/schema.js';
export type {
  BrokerConfig, ClassConfig, ColumnType, DatabaseConfig, DriverKind, EmbeddedConfig, ReservationsConfig,
} from './config/types.js';
export type { Db, DatabaseHandle, ReserveOptions, TransactionOptions } from './client/db.js';
export type { Reservation, BeginOptions } from './client/reservation.js';
export type { QueryResult, FieldInfo } from './client/result.js';
