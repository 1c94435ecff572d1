/**
 * Builds the one summary of the reliability suite from the recorded figures (provisional).
 */
import type { Figure } from './figures.js';

export interface RunFacts {
  consoleBytes: number;
  consoleHits: number;
  failed: string[];
}

export function summarize(figures: Figure[], facts: RunFacts): string {
  const lines = ['Reliability summary (RELIABILITY.md)'];
  for (const f of figures) lines.push(`  ${f.row} ${f.kind ?? ''}: ${JSON.stringify(f.data)}`);
  lines.push(`  console output scanned: ${facts.consoleBytes} bytes, canary hits ${facts.consoleHits}`);
  if (facts.failed.length > 0) lines.push(`  FAILED: ${facts.failed.join('; ')}`);
  return lines.join('\n');
}
