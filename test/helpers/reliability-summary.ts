/**
 * The one summary of `npm run test:reliability`, in the plan's form (RELIABILITY.md "One-line
 * summary to publish"): one line per row with its figures, then load held / faults survived /
 * bad inputs tried / nothing lost, every number taken from what the tests recorded. A row that
 * recorded nothing says so instead of a number.
 */
import type { Figure } from './figures.js';

/** What the reporter itself saw during the run. */
export interface RunFacts {
  /** Bytes of test output scanned for the canary, and the hits. */
  consoleBytes: number;
  consoleHits: number;
  /** Full names of failed tests, and of skipped ones. */
  failed: string[];
  skipped?: string[];
}

type Data = Record<string, unknown>;

const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? v : 0);
const fmt = (n: number): string => n.toLocaleString('en-US');
const ms = (v: unknown): string => (typeof v === 'number' && Number.isFinite(v) ? `${Math.round(v * 10) / 10} ms` : 'n/a');

export function summarize(figures: Figure[], facts: RunFacts): string {
  const rows = (row: string): Figure[] => figures.filter((f) => f.row === row);
  const kinds = [...new Set(figures.map((f) => f.kind).filter((k): k is string => k !== undefined))];
  const sum = (row: string, key: string, filter?: (d: Data) => boolean): number =>
    rows(row).filter((f) => filter?.(f.data) ?? true).reduce((n, f) => n + num(f.data[key]), 0);
  const per = (row: string, render: (d: Data) => string, filter?: (d: Data) => boolean): string => {
    const out = rows(row).filter((f) => filter?.(f.data) ?? true).map((f) => `${f.kind}: ${render(f.data)}`);
    return out.length > 0 ? out.join(' | ') : 'not run';
  };
  const endOf = (d: Data): { idleInTx: number; reserved: number } => (d.end ?? { idleInTx: 0, reserved: 0 }) as { idleInTx: number; reserved: number };

  const lines: string[] = ['', '═══ Reliability summary (RELIABILITY.md test plan; figures measured in this run) ═══'];
  const row = (id: string, what: string, text: string): void => void lines.push(`${id.padEnd(3)} ${what.padEnd(28)} ${text}`);
  row('L1', 'load at the cap', per('L1', (d) => `${fmt(num(d.ops))} ops (${d.workers} workers × ${d.opsPerWorker}) in ${d.seconds} s, peak server conns ${d.peakServer}/${d.cap}, created ${d.created}, cap refusals ${d.capRefusals}, ${d.lost} lost, ${d.duplicated} duplicated, ${d.partial} partial, p50/p99 ${ms(d.p50)}/${ms(d.p99)}`));
  row('L2', 'saturation, bounded queue', per('L2', (d) => `${d.queueFull} QUEUE_FULL (max ${d.queueFullMaxMillis} ms), ${d.acquireTimeout} ACQUIRE_TIMEOUT (earliest ${d.timeoutMinMillis} ms, max overshoot ${d.maxOvershootMillis} ms), recovery ${ms(d.recoveryMillis)}, ${d.leakedAfterTimeouts} leaked`));
  row('L3', 'spike demand', per('L3', (d) => `${d.connectionsOpened} connections opened for ${d.requests} requests (cap ${d.cap}), drained in ${d.drainMillis} ms`));
  row('F1', 'idle connections killed', per('F1', (d) => `${d.kills} kills in ${d.rounds} rounds, ${d.crashes} crashes, ${d.totalErrors} errors in the 100 queries after each round (at most 1 allowed per round), refill ≤ ${d.refillMillisMax} ms, peak conns ${d.peakServer}/${d.cap}`));
  row('F2', 'kill mid-transaction/COMMIT', per('F2', (d) => `${d.killsMidTx} kills mid-tx (reported in ≤ ${d.maxReportMillis} ms), ${d.commitFaults} during COMMIT, ${d.partial} partial commits, ${d.leakedSlots} leaked slots, ${d.unknownResolved}/${d.unknown} unknown outcomes resolved (${d.xidMismatch} mismatches)`));
  row('F3', 'kill during long statement', per('F3', (d) => `${num(d.kills) + num(d.resets)} kills/resets, rejected in ≤ ${ms(d.maxRejectMillis)}, other worker ${d.otherWorkerOps} ops, ${Object.keys((d.otherWorkerErrors ?? {}) as Data).length === 0 ? 'no' : 'some'} errors`));
  row('F4', 'restarts under load', per('F4', (d) => `${d.restarts} restarts survived, max recovery ${ms(d.maxRecoveryMillis)}, errors per restart ${((d.perRestart ?? []) as Data[]).map((r) => r.errors).join('/')}, ${d.lost} lost, ${d.unknown} unknown resolved, peak conns ${d.peakServer}/${d.cap}`));
  row('F5', 'database down', per('F5', (d) => `${d.downSeconds} s down, ${d.acquiresWhileDown} acquires all ACQUIRE_TIMEOUT (overshoot ≤ ${d.maxOvershootMillis} ms), ${d.connectAttemptsWhileDown} backed-off reconnects, first success ${d.firstSuccessAfterUpSeconds} s after up`));
  const toxicsOf = (k: string | undefined): string[] => rows('F6').filter((f) => f.kind === k && typeof f.data.toxic === 'string').map((f) => String(f.data.toxic));
  row('F6', 'network toxics', kinds.map((k) => {
    const t = toxicsOf(k);
    if (t.length === 0) return `${k}: not run`;
    const trunc = rows('F6').filter((f) => f.kind === k && f.data.toxic === 'limit_data').reduce((n, f) => n + num(f.data.truncatedAsSuccess), 0);
    return `${k}: ${t.length} toxics (${t.join(', ')}), ${trunc} truncated-as-success`;
  }).join(' | '));
  row('F7', 'worker deaths', per('F7', (d) => `${d.deaths} deaths (4 ways), ${d.orphanedTx} orphaned tx, ${d.hung} hung promises, max detect→rollback ${ms(d.maxDetectToRollbackMillis)}`));
  row('F8', 'lease expiry', per('F8', (d) => `${d.expiries} expiries, reclaim p99 ${ms(d.reclaimP99Millis)} past the lease, ${d.backstopFirings} backstop firings`));
  row('F9', 'shutdown with reservations', per('F9', (d) => `close() ${d.closeMillis} ms with ${d.tokens} tokens and ${d.queued} queued, handles left ${d.handlesLeft}, exit ${d.exitAfterCloseMillis} ms later`));
  row('S1', 'forged/replayed tokens', per('S1', (d) => `${fmt(num(d.tried))} tried, ${d.accepted} accepted, ${d.statementsDuringForgery} statements and ${d.wireBytesDuringForgery} bytes to the server`));
  row('S2', 'hostile identifiers', per('S2', (d) => `${d.tried} configs (${d.hostileNames} names), ${d.accepted} accepted, ${d.unquoted} unquoted in SQL, ${d.tablesHarmed} tables harmed`));
  row('S3', 'hostile values', per('S3', (d) => `${fmt(num(d.payloads) + num(d.rawStatements))} payloads, ${d.sqlTextDeviations} SQL text deviations, ${d.otherErrors} untyped errors`));
  row('S4', 'malformed configs', per('S4', (d) => `${d.malformed} tried, ${d.accepted} accepted, ${d.secretsEchoed} secrets echoed`));
  row('S5', 'secrets', per('S5', (d) => `${d.canaryHits} canary hits in ${Math.round(num(d.capturedBytes) / 1024)} KB captured`));
  row('S6', 'oversized results/requests', per('S6', (d) => `~200 MB result → ${d.resultBytesCode} in ${d.resultBytesRejectMillis} ms (main RSS +${d.resultBytesRssRiseMb} MB), 50 MB request → ${d.requestCode} (main RSS +${d.requestMainRssRiseMb} MB)`));
  row('S7', 'reservation hoarding', per('S7', (d) => `hoarder got ${d.granted}/${d.asked} (limit ${d.limit}), plain p99 ${ms(d.plainP99UnderAttackMillis)} under attack vs ${ms(d.plainP99BaselineMillis)}, reclaimed after ${d.reclaimAfterMillis} ms (TTL ${d.ttlMillis}); per-principal quota: none`));

  // ---- the four lines ----
  const l1 = rows('L1');
  const load = l1.length === 0 ? 'not run' : (() => {
    const d = l1[0].data;
    const peaks = l1.map((f) => `${f.data.peakServer}/${f.data.cap} (${f.kind})`).join(', ');
    const lat = l1.map((f) => `${ms(f.data.p50)}/${ms(f.data.p99)} (${f.kind})`).join(', ');
    return `${d.workers} workers × ${fmt(num(d.opsPerWorker))} ops × ${l1.length} databases at cap ${d.cap}, peak server connections ${peaks}, p50/p99 ${lat}`;
  })();
  const kills = sum('F1', 'kills') + sum('F2', 'killsMidTx') + sum('F3', 'kills');
  const restarts = sum('F4', 'restarts');
  const outages = rows('F5').length;
  const toxics = kinds.reduce((n, k) => n + toxicsOf(k).length, 0);
  const deaths = sum('F7', 'deaths');
  const expiries = sum('F8', 'expiries');
  const restartText = rows('F4').length === 0 && outages === 0
    ? 'no database restarts (skipped in this run)'
    : `${restarts} database restarts (${rows('F4').map((f) => `${f.data.restarts} ${f.kind}`).join(', ')}) and ${outages} outages of ${rows('F5')[0]?.data.downSeconds ?? 'n/a'} s`;
  const faults = `${fmt(kills)} backend kills (+${fmt(sum('F3', 'resets') + sum('F2', 'commitFaults'))} socket resets and cuts during COMMIT), ${restartText}, ${toxics} network toxics (6 kinds × ${kinds.length} databases), ${fmt(deaths)} worker deaths and ${fmt(expiries)} lease expiries`;
  const accepted = sum('S1', 'accepted') + sum('S2', 'accepted') + sum('S4', 'accepted');
  const injections = sum('S2', 'unquoted') + sum('S3', 'sqlTextDeviations');
  const bad = `${fmt(sum('S1', 'tried'))} forged tokens, ${fmt(sum('S2', 'tried'))} hostile identifiers, ${fmt(sum('S3', 'payloads') + sum('S3', 'rawStatements'))} values and ${fmt(sum('S4', 'malformed'))} configs, with ${accepted} accepted and ${injections} injections`;
  const ledgerRows = ['L1', 'F4'];
  const lost = ledgerRows.reduce((n, r) => n + sum(r, 'lost'), 0) + sum('F2', 'phantom') + ledgerRows.reduce((n, r) => n + sum(r, 'phantom'), 0);
  const duplicated = ledgerRows.reduce((n, r) => n + sum(r, 'duplicated'), 0);
  const partial = ['L1', 'F2', 'F4'].reduce((n, r) => n + sum(r, 'partial'), 0);
  const unknown = ['L1', 'F2', 'F4'].reduce((n, r) => n + sum(r, 'unknown'), 0);
  const mismatched = ['F2', 'F4'].reduce((n, r) => n + sum(r, 'xidMismatch'), 0);
  const withEnd = figures.filter((f) => f.data.end !== undefined);
  const leaked = withEnd.reduce((n, f) => n + num(endOf(f.data).reserved), 0) + sum('F2', 'leakedSlots');
  const idleInTx = withEnd.reduce((n, f) => n + num(endOf(f.data).idleInTx), 0) + sum('F7', 'orphanedTx');
  const leaks = sum('S5', 'canaryHits') + sum('S4', 'secretsEchoed') + facts.consoleHits;
  const capturedKb = Math.round((sum('S5', 'capturedBytes') + facts.consoleBytes) / 1024);
  const nothing = `${lost} lost and ${duplicated} duplicated acknowledged ops (${fmt(sum('L1', 'acked') + sum('F4', 'acked'))} acknowledged; ${unknown} unknown outcomes all resolved, ${mismatched} disagreeing with pg_xact_status), ${partial} partial transactions, ${leaked} leaked reservations, ${idleInTx} idle-in-transaction sessions at the end, and ${leaks} secret leaks (${capturedKb} KB of output scanned)`;
  lines.push('');
  lines.push(`Load held: ${load}.`);
  lines.push(`Faults survived: ${faults}.`);
  lines.push(`Bad inputs tried: ${bad}.`);
  lines.push(`Nothing lost: ${nothing}.`);
  const skipped = facts.skipped ?? [];
  if (facts.failed.length > 0) lines.push('', `FAILED (${facts.failed.length}): ${facts.failed.join('; ')}`);
  else lines.push('', `Every test passed${skipped.length > 0 ? ` (${skipped.length} skipped: ${skipped.join('; ')})` : ''}.`);
  return lines.join('\n');
}
