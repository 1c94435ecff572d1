/**
 * The only switch on the database kind (STYLE.md point 3).
 * @module
 */
import type { DatabaseConfig } from '../config/types.js';
import type { Driver } from './driver.js';
import { MysqlDriver } from './mysql/mysql-driver.js';
import { PgDriver } from './pg/pg-driver.js';

/** Builds the driver for one configured database. */
export function createDriver(config: DatabaseConfig): Driver {
  switch (config.driver) {
    case 'pg':
      return new PgDriver(config);
    case 'mysql':
      return new MysqlDriver(config);
    default: {
      const never: never = config.driver;
      throw new TypeError(`unknown driver ${String(never)}`);
    }
  }
}
