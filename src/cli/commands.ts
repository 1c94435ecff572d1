/**
 * Commands built on the mapper and the demo.
 * @module
 */
import { InvalidArgumentError, type Command } from 'commander';
import { emit, runIntrospect, runTypes } from './codegen-commands.js';
import { runDemo } from './demo.js';

function workerCount(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 3 || n > 64) throw new InvalidArgumentError('must be an integer from 3 to 64');
  return n;
}

/** Adds `demo`, `types` and `introspect` to the program. */
export function registerExtraCommands(p: Command): void {
  p.command('demo')
    .description('run the guided demo: N workers sharing M connections, the mapper, a transaction across threads, a lease expiry')
    .argument('[config]', 'config file (needs databases app (pg) and audit, classes User and Event)', 'config.json5')
    .option('-w, --workers <n>', 'worker threads in the piscina pool', workerCount, 4)
    .action(async (config: string, opts: { workers: number }) => {
      await runDemo({ config, workers: opts.workers, out: process.stdout });
    });

  p.command('types')
    .description("TypeScript interfaces for the config's classes; untyped attributes are typed from the database catalog")
    .argument('[config]', 'config file', 'config.json5')
    .option('-o, --out <file>', 'write to a file instead of stdout')
    .option('--no-database', 'do not read the catalog; untyped attributes become unknown')
    .action(async (config: string, opts: { out?: string; database: boolean }) => {
      await emit(await runTypes(config, opts.database), opts.out);
    });

  p.command('introspect')
    .description("read a database's catalog and print a classes section for config.json5")
    .argument('[config]', 'config file', 'config.json5')
    .requiredOption('-d, --database <name>', 'the configured database to read')
    .option('-t, --tables <list>', 'comma-separated tables (default: all)')
    .option('--camel-case', 'name attributes in camelCase')
    .option('-o, --out <file>', 'write to a file instead of stdout')
    .action(async (config: string, opts: { database: string; tables?: string; camelCase?: boolean; out?: string }) => {
      const tables = opts.tables?.split(',').map((t) => t.trim()).filter(Boolean);
      const { json5, skipped } = await runIntrospect(config, opts.database, { tables, camelCase: opts.camelCase === true });
      await emit(json5, opts.out);
      for (const s of skipped) process.stderr.write(`skipped ${s.table}: ${s.reason}\n`);
    });
}
