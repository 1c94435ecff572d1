/**
 * Prometheus text exposition (version 0.0.4) of the broker's figures.
 * @module
 */
import type { Pool } from '../pool/pool.js';
import { BUCKETS_MILLIS, type Histogram } from '../util/histogram.js';
import type { BrokerStats } from './broker.js';
import type { Reservations } from './reservations.js';

function label(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function histogram(lines: string[], name: string, help: string, pools: Pool[], pick: (p: Pool) => Histogram): void {
  lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} histogram`);
  for (const p of pools) {
    const h = pick(p);
    const db = label(p.name);
    let cumulative = 0;
    BUCKETS_MILLIS.forEach((le, i) => {
      cumulative += h.counts[i];
      lines.push(`${name}_bucket{database="${db}",le="${le / 1000}"} ${cumulative}`);
    });
    cumulative += h.counts[BUCKETS_MILLIS.length];
    lines.push(`${name}_bucket{database="${db}",le="+Inf"} ${cumulative}`);
    lines.push(`${name}_sum{database="${db}"} ${h.sum / 1000}`, `${name}_count{database="${db}"} ${h.count}`);
  }
}

/** Renders gauges, counters and histograms for every database. */
export function renderMetrics(stats: BrokerStats, pools: Pool[], reservations: Reservations): string {
  const lines: string[] = [];
  const gauges: [keyof BrokerStats['databases'][string], string][] = [
    ['max', 'Configured connection cap.'],
    ['open', 'Open connections.'],
    ['idle', 'Open connections not in use.'],
    ['busy', 'Connections checked out (running a statement or bound to a reservation).'],
    ['waiting', 'Requests waiting for a connection.'],
    ['reserved', 'Reservation slots held.'],
  ];
  for (const [key, help] of gauges) {
    const name = `threadbroker_connections_${key}`;
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} gauge`);
    for (const [db, s] of Object.entries(stats.databases)) lines.push(`${name}{database="${label(db)}"} ${s[key]}`);
  }
  const counters: [string, string, (p: Pool) => number][] = [
    ['threadbroker_connections_created_total', 'Connections opened since start.', (p) => p.stats().created],
    ['threadbroker_acquire_timeouts_total', 'Requests refused with ACQUIRE_TIMEOUT.', (p) => p.timeouts],
    ['threadbroker_queue_full_total', 'Requests refused with QUEUE_FULL.', (p) => p.queueFull],
  ];
  for (const [name, help, get] of counters) {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} counter`);
    for (const p of pools) lines.push(`${name}{database="${label(p.name)}"} ${get(p)}`);
  }
  lines.push('# HELP threadbroker_reservations_expired_total Reservations ended by their lease.', '# TYPE threadbroker_reservations_expired_total counter', `threadbroker_reservations_expired_total ${reservations.expired}`);
  histogram(lines, 'threadbroker_acquire_wait_seconds', 'Time requests waited for a connection.', pools, (p) => p.waitTime);
  histogram(lines, 'threadbroker_connection_hold_seconds', 'Time connections stayed checked out.', pools, (p) => p.holdTime);
  return lines.join('\n') + '\n';
}
