#!/usr/bin/env node
/**
 * The `threadbroker` command.
 * @module
 */
import { Command, InvalidArgumentError } from 'commander';
import { BrokerError } from '../errors.js';
import { formatCheck, runCheck } from './check.js';
import { watchStats } from './stats.js';
import { registerExtraCommands } from './commands.js';

function positiveInt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('must be a non-negative integer');
  return n;
}

/** Builds the program (exported for tests). */
export function program(): Command {
  const p = new Command('threadbroker')
    .description('A worker-threaded connection broker for PostgreSQL and MySQL, with an object mapper.')
    .showHelpAfterError();

  p.command('check')
    .description('validate a config, connect to every database, compare max with the server limit')
    .argument('[config]', 'config file', 'config.json5')
    .action(async (config: string) => {
      const rows = await runCheck(config);
      process.stdout.write(formatCheck(rows) + '\n');
      if (rows.some((r) => !r.ok)) process.exitCode = 1;
    });

  p.command('stats')
    .description("live view of a running broker's connections, waiters and reservations (needs admin: { port } in its config)")
    .option('-u, --url <url>', 'admin endpoint of the broker', 'http://127.0.0.1:9464')
    .option('-i, --interval <ms>', 'refresh period', positiveInt, 1000)
    .option('-n, --count <n>', 'snapshots to show, 0 = until interrupted', positiveInt, 0)
    .action(async (opts: { url: string; interval: number; count: number }) => {
      await watchStats(opts.url, opts.interval, opts.count, process.stdout);
    });

  registerExtraCommands(p);
  return p;
}

/** Runs the command line; errors print their code and message, never a stack, and exit non-zero. */
export async function main(argv: string[]): Promise<void> {
  try {
    await program().parseAsync(argv);
  } catch (err) {
    if (err instanceof BrokerError) process.stderr.write(`threadbroker: ${err.code}: ${err.message}\n`);
    else process.stderr.write(`threadbroker: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = err instanceof BrokerError && err.code === 'CONFIG_INVALID' ? 2 : 1;
  }
}

await main(process.argv);
