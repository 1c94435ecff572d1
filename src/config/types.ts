/**
 * The resolved, validated, frozen configuration a {@link Broker} runs on.
 * `loadConfig` produces it from `config.json5` (or an object of the same shape).
 * @module
 */

/** The database driver kinds threadbroker speaks. */
export type DriverKind = 'pg' | 'mysql';

/** An embedded PostgreSQL started and stopped by the broker. */
export interface EmbeddedConfig {
  /** Where the cluster's files live; persists across runs. */
  readonly dataDir: string;
  /** TCP port on 127.0.0.1; a free one is picked when absent. */
  readonly port?: number;
  /** Database inside the cluster, created when missing (default `postgres`). */
  readonly database?: string;
}

/** One configured database after defaults were applied. */
export interface DatabaseConfig {
  /** The name the database has under `databases` in the config. */
  readonly name: string;
  readonly driver: DriverKind;
  /** Connection URL (`postgres://…`, `mysql://…`). Secret: non-enumerable, never printed. */
  readonly url?: string;
  readonly host?: string;
  readonly port?: number;
  readonly user?: string;
  /** Secret: non-enumerable, never printed. */
  readonly password?: string;
  readonly database?: string;
  readonly embedded?: EmbeddedConfig;
  /** Hard cap of open connections (default 10). */
  readonly max: number;
  /** Longest wait for a pooled connection before `ACQUIRE_TIMEOUT` (default 10000). */
  readonly acquireTimeoutMillis: number;
  /** Longest number of waiters before `QUEUE_FULL` (default 10000). */
  readonly queueLimit: number;
  /** An idle connection is closed after this long (default 30000; 0 = never). */
  readonly idleTimeoutMillis: number;
  /** A connection is retired after this long, once it is idle (default 1800000; 0 = never). */
  readonly maxLifetimeMillis: number;
  /** Reservation slots (default `max - 1`, at most `max - 1`). */
  readonly maxReserved: number;
  /** TCP connect + authentication deadline for a new connection (default 10000). */
  readonly connectTimeoutMillis: number;
  /**
   * Deadline of one statement (`QUERY_TIMEOUT`); when it passes, the connection is closed, since
   * the server may still be running the statement (default 0 = none).
   */
  readonly queryTimeoutMillis: number;
  /** Most rows one result may have before `RESULT_TOO_LARGE` (default 0 = no limit). */
  readonly maxRows: number;
  /** Most bytes (as received from the server) one result may take before `RESULT_TOO_LARGE` (default 64 MiB; 0 = no limit). */
  readonly maxResultBytes: number;
  /** Most bytes a statement and its parameters may take; larger ones are refused with `REQUEST_TOO_LARGE` before they are sent (default 64 MiB; 0 = no limit). */
  readonly maxRequestBytes: number;
  /**
   * Plain statements are encoded and decoded in the calling thread; the broker only forwards
   * protocol bytes (default true; PostgreSQL and MySQL alike).
   */
  readonly forwardStatements: boolean;
  /**
   * With `forwardStatements`: most waiting SELECT statements that share one connection when it
   * comes back, pipelined (default 8; 1 = never share).
   */
  readonly pipelineDepth: number;
}

/** Defaults for every `reserve()`. */
export interface ReservationsConfig {
  /** A reservation unused this long is rolled back and freed (default 30000). */
  readonly idleTimeoutMillis: number;
  /** A reservation is rolled back and freed this long after it was taken (default 300000). */
  readonly maxLifetimeMillis: number;
  /** How often the housekeeper checks leases (default 1000). */
  readonly housekeepingMillis: number;
}

/** A column type hint for the mapper and codegen. */
export type ColumnType =
  | 'integer' | 'bigint' | 'numeric' | 'float' | 'boolean' | 'text' | 'date' | 'timestamp' | 'json' | 'bytes';

/** One mapped class. */
export interface ClassConfig {
  readonly name: string;
  readonly database: string;
  readonly table: string;
  /** Attribute name of the primary key. */
  readonly key: string;
  /** Attribute name of the optimistic-lock version column, if any. */
  readonly version?: string;
  /** attribute -> column. A list in the config maps each name to itself. */
  readonly attributes: Readonly<Record<string, string>>;
  /** attribute -> type, when given. */
  readonly types: Readonly<Record<string, ColumnType>>;
}

/** The optional admin endpoint (loopback only). */
export interface AdminConfig {
  readonly port: number;
  readonly host: '127.0.0.1' | '::1' | 'localhost';
}

/** The whole resolved config. Frozen. */
export interface BrokerConfig {
  /** When present, GET /stats and GET /metrics are served on loopback. */
  readonly admin?: AdminConfig;
  readonly databases: Readonly<Record<string, DatabaseConfig>>;
  readonly reservations: ReservationsConfig;
  readonly classes: Readonly<Record<string, ClassConfig>>;
}
