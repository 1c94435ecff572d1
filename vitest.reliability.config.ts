import { basename } from 'node:path';
import { BaseSequencer, type TestSpecification } from 'vitest/node';
import { defineConfig } from 'vitest/config';
import base from './vitest.config.js';

// The reliability suite (RELIABILITY.md): `npm run test:reliability`. The default config's aliases
// (tests run against dist/), its own files, and one summary printed at the end.

/** Rows in plan order; server restarts and stops (F4, F5) last, since they disturb everything else. */
const ORDER = ['l1', 'l2', 'l3', 'f1', 'f2', 'f3', 'f6', 'f7', 'f8', 'f9', 's1', 's2', 's3', 's4', 's5', 's6', 's7', 'reliability-', 'f4', 'f5'];

class PlanOrder extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const rank = (f: TestSpecification): number => {
      const name = basename(f.moduleId);
      const i = ORDER.findIndex((p) => name.startsWith(p));
      return i < 0 ? ORDER.length : i;
    };
    return [...files].sort((a, b) => rank(a) - rank(b) || a.moduleId.localeCompare(b.moduleId));
  }
}

export default defineConfig({
  resolve: base.resolve,
  test: {
    include: ['test/reliability/**/*.test.ts', 'test/integration/reliability-*.test.ts', 'test/unit/reliability-*.test.ts'],
    fileParallelism: false,
    testTimeout: 300_000,
    hookTimeout: 180_000,
    setupFiles: ['test/helpers/setup.ts'],
    globalSetup: ['test/helpers/reliability-global-setup.ts'],
    reporters: ['default', './test/helpers/reliability-reporter.ts'],
    sequence: { sequencer: PlanOrder },
  },
});
