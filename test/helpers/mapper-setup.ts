/**
 * Tables and class configs for the mapper tests: unique `map_` table names, the DDL of a table
 * with a column of every mapped type (per kind), and config builders.
 */
import { randomBytes } from 'node:crypto';
import type { DriverKind } from '../../src/config/types.js';
import { brokerUrlOf } from './test-setup.js';

/** A unique table name with the mapper tests' prefix. */
export function uniq(base: string): string {
  return `map_${base}_${randomBytes(4).toString('hex')}`;
}

/** A column of every mapped type, a generated key and a version column. */
export function typesDdl(kind: DriverKind, table: string): string {
  return kind === 'pg'
    ? `create table ${table} (id bigserial primary key, i integer, b bigint, n numeric(20,4), f double precision, ok boolean,
        t text, d date, ts timestamp(3), tstz timestamptz(3), j jsonb, bin bytea, version integer not null default 1)`
    : `create table ${table} (id bigint auto_increment primary key, i int, b bigint, n decimal(20,4), f double, ok boolean,
        t longtext, d date, ts datetime(3), tstz timestamp(3) null, j json, bin longblob, version int not null default 1)`;
}

/** The attributes of the types table, and their declared types. */
export const TYPE_ATTRS = ['id', 'i', 'b', 'n', 'f', 'ok', 't', 'd', 'ts', 'tstz', 'j', 'bin', 'version'] as const;
export const TYPE_TYPES = {
  id: 'bigint', i: 'integer', b: 'bigint', n: 'numeric', f: 'float', ok: 'boolean', t: 'text',
  d: 'date', ts: 'timestamp', tstz: 'timestamp', j: 'json', bin: 'bytes', version: 'integer',
} as const;

/** A row of the types table as the mapper hands it out. */
export interface TypeRow {
  id: number | bigint;
  i: number | null;
  b: number | bigint | null;
  n: string | null;
  f: number | null;
  ok: boolean | null;
  t: string | null;
  d: string | null;
  ts: Date | null;
  tstz: Date | null;
  j: unknown;
  bin: Uint8Array | null;
  version: number;
}

/** A versioned class `Item` (id, name, qty, note, version) and its DDL. */
export function itemDdl(kind: DriverKind, table: string): string {
  return kind === 'pg'
    ? `create table ${table} (id serial primary key, name text not null, qty integer, note text, version integer not null default 1)`
    : `create table ${table} (id int auto_increment primary key, name varchar(200) not null, qty int, note longtext, version int not null default 1)`;
}

/** An unversioned class `Tag` keyed by text: id, label. */
export function tagDdl(_kind: DriverKind, table: string): string {
  return `create table ${table} (id varchar(40) primary key, label varchar(200))`;
}

/** The class entry of `Item` on `database`. */
export function itemClass(database: string, table: string): Record<string, unknown> {
  return { database, table, key: 'id', version: 'version', attributes: ['id', 'name', 'qty', 'note', 'version'], types: { id: 'integer', qty: 'integer', version: 'integer' } };
}

/** A one-database config (`db`) for `kind` with the given classes. */
export function mapperConfig(kind: DriverKind, classes: Record<string, unknown>, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    databases: { db: { driver: kind, url: brokerUrlOf(kind), max: 4 }, ...extra },
    reservations: { housekeepingMillis: 50 },
    classes,
  };
}
