/**
 * Shared pieces of the scripted-driver pool tests (pool-core, pool-pipeline): a resolved database
 * config and the SQL-dialect half of a driver, which those tests never exercise.
 */
import type { DatabaseConfig } from '../../src/config/types.js';

/** A resolved config of database `db` (every default spelled out), with overrides. */
export function poolConfig(over: Partial<DatabaseConfig> = {}): DatabaseConfig {
  return {
    name: 'db', driver: 'pg', max: 2, acquireTimeoutMillis: 10_000, queueLimit: 10_000, idleTimeoutMillis: 0,
    maxLifetimeMillis: 0, maxReserved: 1, connectTimeoutMillis: 1000,
    queryTimeoutMillis: 0, maxRows: 0, maxResultBytes: 0, maxRequestBytes: 0, forwardStatements: false, pipelineDepth: 8, ...over,
  };
}

/** The dialect methods of a scripted driver: fixed strings. */
export abstract class ScriptedDialect {
  beginSql(): string[] { return ['begin']; }
  savepointSql(n: string): string { return n; }
  releaseSavepointSql(n: string): string { return n; }
  rollbackToSavepointSql(n: string): string { return n; }
  async close(): Promise<void> {}
}
