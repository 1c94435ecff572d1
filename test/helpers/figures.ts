/**
 * Figures measured by the reliability suite (RELIABILITY.md "Figure to report"), appended as one
 * JSON line per record and printed as one summary at the end of `npm run test:reliability`
 * (test/helpers/reliability-reporter.ts).
 */
import { appendFileSync, existsSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BROKER_USER } from './test-setup.js';

/** Where the figures of a run go: one file per broker login, so concurrent runs under other logins do not mix. */
export const FIGURES_FILE = process.env.TB_REL_FIGURES ?? join(tmpdir(), `threadbroker-reliability-${BROKER_USER}.jsonl`);

/** One record: a plan row (`L1`, `F6`, …), the driver, and what was measured. */
export interface Figure {
  row: string;
  kind?: string;
  data: Record<string, unknown>;
}

/** Appends the figures of one test. */
export function record(row: string, kind: string | undefined, data: Record<string, unknown>): void {
  appendFileSync(FIGURES_FILE, `${JSON.stringify({ row, kind, data })}\n`);
}

/** Every record of this run. */
export function readFigures(): Figure[] {
  if (!existsSync(FIGURES_FILE)) return [];
  return readFileSync(FIGURES_FILE, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Figure);
}

/** Starts a run with no figures. */
export function clearFigures(): void {
  rmSync(FIGURES_FILE, { force: true });
}

/** The p-th percentile (0–100) of `values`, nearest rank. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}
