/**
 * `threadbroker types` and `threadbroker introspect`: the mapper's codegen functions on a
 * running broker started from the config.
 * @module
 */
import { writeFile } from 'node:fs/promises';
import { Broker } from '../broker/broker.js';
import { readCatalog, type Catalog } from '../mapper/catalog.js';
import { generateTypes, introspect } from '../mapper/codegen.js';

/**
 * TypeScript interfaces for the config's classes. Attributes whose type the config does not
 * give are typed from each class's database catalog (one connection per database, read-only).
 */
export async function runTypes(configPath: string, fromDatabase: boolean): Promise<string> {
  const broker = await Broker.start(configPath);
  try {
    const classes = Object.values(broker.config.classes);
    let catalog: Catalog | undefined;
    const untyped = classes.filter((c) => Object.keys(c.attributes).some((a) => c.types[a] === undefined));
    if (fromDatabase && untyped.length > 0) {
      const db = broker.connect();
      catalog = {};
      for (const database of new Set(untyped.map((c) => c.database))) {
        const tables = untyped.filter((c) => c.database === database).map((c) => c.table);
        Object.assign(catalog, await readCatalog(db, database, tables));
      }
    }
    return generateTypes(broker.config, catalog);
  } finally {
    await broker.close();
  }
}

/** A `classes` section (JSON5) for the tables of one configured database. */
export async function runIntrospect(configPath: string, database: string, opts: { tables?: string[]; camelCase?: boolean }): Promise<{ json5: string; skipped: { table: string; reason: string }[] }> {
  const broker = await Broker.start(configPath);
  try {
    const out = await introspect(broker.connect(), database, opts);
    return { json5: out.json5, skipped: out.skipped };
  } finally {
    await broker.close();
  }
}

/** Writes `text` to `file`, or to stdout when no file is given. */
export async function emit(text: string, file: string | undefined): Promise<void> {
  if (file === undefined) process.stdout.write(text.endsWith('\n') ? text : text + '\n');
  else await writeFile(file, text.endsWith('\n') ? text : text + '\n');
}
