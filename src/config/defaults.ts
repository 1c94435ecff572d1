/**
 * The default values `loadConfig` fills in for every option a config leaves out.
 * @module
 */

import type { ReservationsConfig } from './types.js';

/** Per-database defaults, before `maxReserved` (which depends on `max`) is computed. */
export interface DatabaseDefaults {
  readonly max: number;
  readonly acquireTimeoutMillis: number;
  readonly queueLimit: number;
  readonly idleTimeoutMillis: number;
  readonly maxLifetimeMillis: number;
  readonly connectTimeoutMillis: number;
  readonly queryTimeoutMillis: number;
  readonly maxRows: number;
  readonly maxResultBytes: number;
  readonly maxRequestBytes: number;
  readonly forwardStatements: boolean;
  readonly pipelineDepth: number;
  /** `maxReserved` when absent: one connection always stays free for plain queries. */
  readonly maxReserved: (max: number) => number;
}

/**
 * The one frozen table of defaults.
 *
 * ```ts
 * const max = input.max ?? DEFAULTS.database.max;
 * const maxReserved = input.maxReserved ?? DEFAULTS.database.maxReserved(max); // max - 1
 * ```
 */
export const DEFAULTS: {
  readonly database: DatabaseDefaults;
  readonly reservations: ReservationsConfig;
} = Object.freeze({
  database: Object.freeze({
    max: 10,
    acquireTimeoutMillis: 10_000,
    queueLimit: 10_000,
    idleTimeoutMillis: 30_000,
    maxLifetimeMillis: 1_800_000,
    connectTimeoutMillis: 10_000,
    queryTimeoutMillis: 0,
    maxRows: 0,
    maxResultBytes: 64 * 1024 * 1024,
    maxRequestBytes: 64 * 1024 * 1024,
    forwardStatements: true,
    pipelineDepth: 8,
    maxReserved: (max: number): number => max - 1,
  }),
  reservations: Object.freeze({
    idleTimeoutMillis: 30_000,
    maxLifetimeMillis: 300_000,
    housekeepingMillis: 1_000,
  }),
});
