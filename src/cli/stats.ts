/**
 * `threadbroker stats`: a live terminal view of a running broker, read from its admin endpoint
 * (configure `admin: { port }` in config.json5; it listens on loopback only).
 * @module
 */
import type { BrokerStats } from '../broker/broker.js';

/** Fetches one snapshot from `url` (`http://127.0.0.1:port`). */
export async function fetchStats(url: string, timeoutMillis = 2000): Promise<BrokerStats> {
  const res = await fetch(new URL('/stats', url), { signal: AbortSignal.timeout(timeoutMillis) });
  if (!res.ok) throw new Error(`${url}/stats answered ${res.status}`);
  return (await res.json()) as BrokerStats;
}

function bar(used: number, max: number, width = 20): string {
  const n = max > 0 ? Math.min(width, Math.round((used / max) * width)) : 0;
  return '█'.repeat(n) + '░'.repeat(width - n);
}

/** Renders one snapshot as a table with a usage bar per database. */
export function formatStats(s: BrokerStats, at = new Date()): string {
  const head = `threadbroker stats  ${at.toISOString()}`;
  const rows = Object.entries(s.databases).map(([name, d]) =>
    `${name.padEnd(16)} ${bar(d.open, d.max)} open ${String(d.open).padStart(3)}/${String(d.max).padEnd(3)} busy ${String(d.busy).padStart(3)}  idle ${String(d.idle).padStart(3)}  waiting ${String(d.waiting).padStart(4)}  reserved ${String(d.reserved).padStart(3)}`);
  return [head, '', ...rows].join('\n');
}

/** Polls and redraws until interrupted, or `count` snapshots were shown. */
export async function watchStats(url: string, intervalMillis: number, count: number, out: NodeJS.WriteStream): Promise<void> {
  for (let i = 0; count === 0 || i < count; i++) {
    const s = await fetchStats(url);
    const text = formatStats(s);
    if (out.isTTY) out.write('\x1b[H\x1b[2J' + text + '\n');
    else out.write(text + '\n');
    if (count !== 0 && i + 1 >= count) break;
    await new Promise((r) => setTimeout(r, intervalMillis));
  }
}
