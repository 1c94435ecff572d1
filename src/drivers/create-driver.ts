/**
 * The only switch on the database kind (STYLE.md point 3).
 * @module
 */
import type { DatabaseConfig } from '../config/types.js';
import type { Driver } from './driver.js';
import { MysqlDriver } from './mysql/mysql-driver.js';
import { PgDriver } from './pg/pg-driver.js';

/** Where an embedded server listens, once started. */
export interface Endpoint {
  host: string;
  port: number;
  user: string;
  password: string;
  database: string;
}

/** Builds the driver for one configured database (`endpoint` for an embedded server). */
export function createDriver(config: DatabaseConfig, endpoint?: Endpoint): Driver {
  switch (config.driver) {
    case 'pg':
      return new PgDriver(config, endpoint === undefined ? undefined : () => endpoint);
    case 'mysql':
      return new MysqlDriver(config);
    default: {
      const never: never = config.driver;
      throw new TypeError(`unknown driver ${String(never)}`);
    }
  }
}
