/**
 * The reporter of `npm run test:reliability`: scans every line the tests print for the canary
 * password (RELIABILITY.md S5) and, once the run ends, prints one summary in the plan's form from
 * the figures the tests recorded (test/helpers/figures.ts).
 */
import type { UserConsoleLog } from 'vitest';
import type { Reporter, TestModule } from 'vitest/node';
import { readFigures } from './figures.js';
import { CANARY } from './reliability.js';
import { summarize } from './reliability-summary.js';

export default class ReliabilityReporter implements Reporter {
  #bytes = 0;
  #hits = 0;

  onUserConsoleLog(log: UserConsoleLog): void {
    this.#bytes += Buffer.byteLength(log.content);
    if (log.content.includes(CANARY)) this.#hits++;
  }

  onTestRunEnd(modules: ReadonlyArray<TestModule>): void {
    const failed: string[] = [];
    const skipped: string[] = [];
    for (const m of modules) {
      for (const t of m.children.allTests()) {
        const r = t.result();
        if (r.state === 'skipped') skipped.push(t.fullName);
        if (r.state === 'failed') {
          failed.push(t.fullName);
          for (const e of r.errors ?? []) {
            const text = `${e.message ?? ''}\n${e.stack ?? ''}`;
            this.#bytes += Buffer.byteLength(text);
            if (text.includes(CANARY)) this.#hits++;
          }
        }
      }
    }
    process.stdout.write(`\n${summarize(readFigures(), { consoleBytes: this.#bytes, consoleHits: this.#hits, failed, skipped })}\n`);
  }
}
