/**
 * Console tables, the markdown report (pasted into benchmarks/README.md by full runs) and the SVG chart.
 */
import { WORKLOAD_TITLES } from './workloads.mjs';

const fmtInt = (x) => (x === null || x === undefined || !Number.isFinite(x) ? '–' : Math.round(x).toLocaleString('en-US'));
const fmtUs = (x) => (x === null || x === undefined || !Number.isFinite(x) ? '–' : Math.abs(x) < 100 ? x.toFixed(1) : Math.round(x).toLocaleString('en-US'));
const fmtRatio = (x) => (x === null || x === undefined || !Number.isFinite(x) ? '–' : `${x.toFixed(2)}×`);
const fmtPct = (x) => (x === null || x === undefined || !Number.isFinite(x) ? '–' : `${Math.round(x * 100)}%`);
const fmtCores = (x) => (x === null || x === undefined || !Number.isFinite(x) ? '–' : x.toFixed(2));
const fmtMiB = (x) => (x === null || x === undefined || !Number.isFinite(x) ? '–' : `${(x / 1048576).toFixed(1)} MiB`);
const fmtK = (x) => (!Number.isFinite(x) ? '–' : x >= 10_000 ? `${(x / 1000).toFixed(1)}k` : x >= 1000 ? `${(x / 1000).toFixed(2)}k` : String(Math.round(x)));

function table(header, rows) {
  const all = [header, ...rows].map((r) => r.map(String));
  const widths = header.map((_, i) => Math.max(...all.map((r) => r[i].length)));
  return all.map((r, k) => {
    const line = r.map((c, i) => (i === 0 || (k > 0 && i === 1) ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
    return k === 0 ? `${line}\n${widths.map((w) => '-'.repeat(w)).join('  ')}` : line;
  }).join('\n');
}

function mdTable(header, rows, align) {
  const a = align ?? header.map((_, i) => (i < 2 ? ':--' : '--:'));
  return [`| ${header.join(' | ')} |`, `| ${a.join(' | ')} |`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}

/** CPU microseconds per query of the main thread and of the whole Node process: medians over rounds. */
export function perQuery(c) {
  const med = (xs) => {
    const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
    if (v.length === 0) return null;
    const m = v.length >> 1;
    return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
  };
  const rounds = c.rounds ?? [];
  return {
    main: med(rounds.map((r) => (r.mainCpu ?? NaN) / r.throughput * 1e6)),
    node: med(rounds.map((r) => (r.procCpu ?? NaN) / r.throughput * 1e6)),
  };
}

/** Prints one driver × workload block as it completes. */
export function printCell(driver, workload, cells, brokeredIds) {
  const header = ['config', 'q/s', '±', ...brokeredIds.map((b) => `× ${b}`), 'p50 µs', 'p99 µs', 'mean µs', 'main ELU', 'main CPU', 'main wait', 'main µs/q', 'node µs/q', 'worker ELU', 'other CPU', 'errors'];
  const rows = Object.entries(cells).map(([id, c]) => [
    id, fmtInt(c.throughput), fmtPct(c.spread), ...brokeredIds.map((b) => fmtRatio(c.vsBrokered[b])), fmtUs(c.p50), fmtUs(c.p99), fmtUs(c.mean),
    fmtPct(c.mainElu), fmtPct(c.mainCpu), fmtPct(c.mainWait), fmtUs(perQuery(c).main), fmtUs(perQuery(c).node), fmtPct(c.workerElu), fmtCores(c.otherCpu), String(c.errors + c.wrongRows),
  ]);
  console.log(`\n${driver} · ${WORKLOAD_TITLES[workload]}\n${table(header, rows)}`);
  for (const [id, c] of Object.entries(cells)) if (c.firstError) console.log(`  ${id}: first error: ${c.firstError}`);
}

/** The headline: brokered ÷ per-worker pools per driver, workload and worker count. */
function headline(result) {
  const workers = result.settings.workers;
  const rows = [];
  for (const [driver, d] of Object.entries(result.drivers)) {
    for (const [w, cells] of Object.entries(d.workloads)) {
      rows.push([driver, WORKLOAD_TITLES[w], ...workers.map((n) => {
        return fmtRatio(cells[`per-worker-${n}`]?.brokeredOver?.[`brokered-${n}`]);
      }), ...workers.map((n) => fmtPct(cells[`brokered-${n}`]?.mainElu)), ...workers.map((n) => {
        const b = cells[`brokered-${n}`];
        const p = cells[`per-worker-${n}`];
        return b && p ? fmtRatio(perQuery(b).node / perQuery(p).node) : '–';
      })]);
    }
  }
  return {
    header: ['driver', 'workload', ...workers.map((n) => `brokered ÷ per-worker, ${n} workers`), ...workers.map((n) => `main ELU, brokered-${n}`),
      ...workers.map((n) => `Node CPU per query, brokered-${n} ÷ per-worker-${n}`)],
    rows,
  };
}

/** Prints the end-of-run summary. */
export function printSummary(result) {
  const h = headline(result);
  console.log(`\nbrokered ÷ per-worker pools (median of per-round ratios; goal ≥ 1.00)\n${table(h.header, h.rows)}`);
  for (const [driver, d] of Object.entries(result.drivers)) {
    if (d.hop) {
      console.log(`\n${driver}: hop at concurrency 1 (µs)\n${table(['workload', 'brokered p50', 'direct p50', 'added p50', 'brokered p99', 'direct p99', 'added p99'],
        Object.entries(d.hop).map(([w, x]) => [WORKLOAD_TITLES[w], fmtUs(x.brokeredP50), fmtUs(x.directP50), fmtUs(x.addedP50), fmtUs(x.brokeredP99), fmtUs(x.directP99), fmtUs(x.addedP99)]))}`);
    }
    if (d.reserve) {
      const r = d.reserve;
      console.log(`${driver}: reserve+release p50 ${fmtUs(r.reserveReleaseP50)} µs, p99 ${fmtUs(r.reserveReleaseP99)} µs (${fmtInt(r.reserveReleasePerSecond)}/s in one caller); ` +
        `reserve+SELECT 1+release p50 ${fmtUs(r.reserveSelect1ReleaseP50)} µs vs SELECT 1 ${fmtUs(r.select1P50)} µs`);
    }
    const m = d.memory;
    console.log(`${driver}: server-side peak of broker sessions ${d.connections.serverPeak} (max ${d.connections.max}); main heap ${fmtMiB(m.beforeStart.heapUsed)} before start, ` +
      `${fmtMiB(m.brokeredPeak.heapUsed)} peak at the end of brokered windows; process rss peak ${fmtMiB(m.brokeredPeak.rss)}`);
  }
}

/** The results section of benchmarks/README.md. */
export function markdownReport(result, jsonRef, chartRef = `${result.mode}-latest.svg`) {
  const e = result.environment;
  const s = result.settings;
  const out = [];
  out.push(`Run of ${result.startedAt.slice(0, 16).replace('T', ' ')} UTC (${result.mode}, ${Math.round(result.durationSeconds)} s): Node ${e.node}, ` +
    `${e.cpus} × ${e.cpuModel ?? 'cpu'}, commit ${e.commit ?? '?'}${e.srcDirty ? ' with uncommitted changes in src/' : ''}${e.distHash ? ` (dist/src hash ${e.distHash})` : ''}, load average ${e.loadavgBefore.map((x) => x.toFixed(2)).join(' ')} before and ` +
    `${e.loadavgAfter.map((x) => x.toFixed(2)).join(' ')} after. ${s.rounds} interleaved rounds of ${s.warmupSeconds} s warm-up + ${s.measureSeconds} s ` +
    `measurement per configuration and workload; ${s.callers} callers; \`max: ${s.max}\`. Raw numbers: \`${jsonRef}\`.`);
  out.push('');
  out.push('**Brokered ÷ per-worker pools** at the same total connections: throughput (median of the per-round ratios; the goal of issue 8 is ≥ 1.00), ' +
    'the main thread\'s event-loop utilisation under the broker, and how much more CPU the whole Node process spends per query with the broker than with per-worker pools:');
  out.push('');
  const h = headline(result);
  out.push(mdTable(h.header, h.rows));
  for (const [driver, d] of Object.entries(result.drivers)) {
    const brokeredIds = s.workers.map((n) => `brokered-${n}`);
    out.push('');
    out.push(`**${driver === 'pg' ? 'PostgreSQL' : 'MariaDB'} ${d.serverVersion}: throughput and latency.** Throughput is the median over rounds and *±* half the rounds' range relative to it ` +
      `(the noise); \`× brokered-N\` is the median of the per-round ratios to that configuration; latency is per call, in µs, including the wait for one of the ${s.max} connections` +
      (d.ceilingTool ? `; *ceiling* is \`${d.ceilingTool}\` at ${s.max} connections (mean latency only).` : `; no ceiling (${d.ceilingSkipped}).`));
    out.push('');
    const rows = [];
    const cpuRows = [];
    for (const [w, cells] of Object.entries(d.workloads)) {
      for (const [id, c] of Object.entries(cells)) {
        rows.push([WORKLOAD_TITLES[w], id, fmtInt(c.throughput), fmtPct(c.spread), ...brokeredIds.map((b) => fmtRatio(c.vsBrokered[b])), fmtUs(c.p50), fmtUs(c.p99), fmtUs(c.mean), String(c.errors + c.wrongRows)]);
        if (id === 'ceiling') continue;
        const per = perQuery(c);
        cpuRows.push([WORKLOAD_TITLES[w], id, fmtPct(c.mainElu), fmtPct(c.mainCpu), fmtPct(c.mainWait), fmtUs(per.main), fmtUs(per.node), fmtPct(c.workerElu), fmtCores(c.otherCpu)]);
      }
    }
    out.push(mdTable(['workload', 'configuration', 'queries/s', '±', ...brokeredIds.map((b) => `× ${b}`), 'p50', 'p99', 'mean', 'errors'], rows));
    out.push('');
    out.push(`**${driver === 'pg' ? 'PostgreSQL' : 'MariaDB'}: where the CPU goes.** *main ELU* is the main thread's event-loop utilisation; *main on CPU* and *main waiting* are the shares of ` +
      'wall time it ran on a core and was runnable without one (Linux schedstat); *main µs/query* and *Node µs/query* are CPU time per query of the main thread and of the whole Node process ' +
      '(all threads), the figures least sensitive to the machine\'s noise; *worker ELU* is the mean over worker threads; *other CPU* is what other processes on the machine used meanwhile, in cores ' +
      `(of ${e.cpus}). Medians over rounds.`);
    out.push('');
    out.push(mdTable(['workload', 'configuration', 'main ELU', 'main on CPU', 'main waiting', 'main µs/query', 'Node µs/query', 'worker ELU', 'other CPU'], cpuRows));
  }
  const hopRows = [];
  const rsvRows = [];
  const connRows = [];
  for (const [driver, d] of Object.entries(result.drivers)) {
    for (const [w, x] of Object.entries(d.hop ?? {})) {
      hopRows.push([driver, WORKLOAD_TITLES[w], fmtUs(x.brokeredP50), fmtUs(x.directP50), `**${fmtUs(x.addedP50)}**`, fmtUs(x.brokeredP99), fmtUs(x.directP99), fmtUs(x.addedP99)]);
    }
    const r = d.reserve;
    if (r) {
      rsvRows.push([driver, fmtUs(r.reserveReleaseP50), fmtUs(r.reserveReleaseP99), fmtInt(r.reserveReleasePerSecond), fmtUs(r.reserveSelect1ReleaseP50),
        fmtUs(r.select1P50), fmtUs(r.addedOverSelect1P50)]);
    }
    const m = d.memory;
    connRows.push([driver, `**${d.connections.serverPeak}**`, String(d.connections.max), String(d.connections.otherProcessesPeak ?? '–'), String(d.connections.samples),
      fmtMiB(m.beforeStart.heapUsed), fmtMiB(m.afterStart.heapUsed), fmtMiB(m.brokeredPeak.heapUsed), fmtMiB(m.retainedAfterRuns?.heapUsed), fmtMiB(m.brokeredPeak.rss)]);
  }
  if (hopRows.length > 0) {
    out.push('');
    out.push(`**Hop latency at concurrency 1** (one caller in one worker; *direct* is that worker's own pool; µs, medians of ${s.hopRounds} rounds):`);
    out.push('');
    out.push(mdTable(['driver', 'workload', 'brokered p50', 'direct p50', 'added p50', 'brokered p99', 'direct p99', 'added p99'], hopRows));
  }
  if (rsvRows.length > 0) {
    out.push('');
    out.push('**Reservations** at concurrency 1 from a worker (µs): `reserve()` + `release()`, and `reserve()` + one `SELECT 1` + `release()` against a plain brokered `SELECT 1`:');
    out.push('');
    out.push(mdTable(['driver', 'reserve+release p50', 'p99', 'per second', 'reserve+SELECT 1+release p50', 'SELECT 1 p50', 'added p50'], rsvRows));
  }
  out.push('');
  out.push('**Connections and memory.** *Server-side peak*: the largest number of this broker\'s sessions seen on the server over the whole run, sampled every 10 ms from a separate ' +
    'connection in its own thread (pg `pg_stat_activity` by user `tb_bench` and `application_name`, MariaDB `processlist` by user `tb_bench`), attributed to this process by client TCP port; ' +
    '*other processes* is the peak of the same login from elsewhere on the machine (another run, the smoke test), not counted. Memory: the main thread\'s V8 heap after a full GC before ' +
    '`Broker.start` and right after it; the largest at the end of any brokered window (garbage included: allocation pressure); after a full GC once all runs are done with every thread and pool still up ' +
    '(retained); rss is the whole process with all its threads.');
  out.push('');
  out.push(mdTable(['driver', 'server-side peak', 'max', 'other processes', 'samples', 'heap before start', 'heap after start', 'heap peak (brokered windows)', 'heap retained', 'rss peak'], connRows));
  out.push('');
  out.push(`![throughput per configuration and workload](${chartRef})`);
  return out.join('\n');
}

const COLORS = { brokered: '#2563eb', 'per-worker': '#ea580c', 'main-only': '#6b7280', ceiling: '#16a34a' };
const colorOf = (id) => COLORS[id.replace(/-\d+$/, '')] ?? '#999';
const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** Small multiples: one panel per driver × workload, one bar per configuration (median queries/s). */
export function chartSvg(result) {
  const drivers = Object.keys(result.drivers);
  const workloads = result.settings.workloads;
  const pw = 320;
  const ph = 230;
  const top = 56;
  const W = pw * workloads.length + 20;
  const H = top + ph * drivers.length + 30;
  const parts = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="Helvetica, Arial, sans-serif" font-size="11">`);
  parts.push(`<rect width="${W}" height="${H}" fill="#fff"/>`);
  parts.push(`<text x="12" y="20" font-size="15" font-weight="bold">threadbroker: throughput per configuration (queries/s, median of ${result.settings.rounds} rounds)</text>`);
  parts.push(`<text x="12" y="38" fill="#444">${esc(`${result.mode} run ${result.startedAt.slice(0, 16).replace('T', ' ')} UTC · ${result.settings.callers} callers · max ${result.settings.max} connections · ${result.environment.cpus} cores · B÷P = brokered ÷ per-worker pools, same workers (median of per-round ratios)`)}</text>`);
  let lx = 12;
  for (const [k, c] of Object.entries(COLORS)) {
    parts.push(`<rect x="${lx}" y="${H - 20}" width="10" height="10" fill="${c}"/><text x="${lx + 14}" y="${H - 11}">${k}</text>`);
    lx += 14 + k.length * 7 + 18;
  }
  parts.push(`<text x="${lx}" y="${H - 11}" fill="#444">(ceiling bars taller than the panel are cut, value printed)</text>`);
  drivers.forEach((driver, di) => {
    const d = result.drivers[driver];
    workloads.forEach((w, wi) => {
      const cells = d.workloads[w];
      if (!cells) return;
      const x0 = 10 + wi * pw;
      const y0 = top + di * ph;
      const ids = Object.keys(cells);
      const nodeMax = Math.max(1, ...ids.filter((id) => id !== 'ceiling').map((id) => cells[id].throughput || 0));
      const yMax = nodeMax * 1.25;
      const plotTop = y0 + 34;
      const plotH = ph - 80;
      const base = plotTop + plotH;
      parts.push(`<text x="${x0 + 6}" y="${y0 + 16}" font-size="13" font-weight="bold">${esc(`${driver} · ${WORKLOAD_TITLES[w]}`)}</text>`);
      parts.push(`<line x1="${x0 + 6}" y1="${base}" x2="${x0 + pw - 14}" y2="${base}" stroke="#999"/>`);
      const bw = Math.min(40, (pw - 30) / ids.length - 8);
      ids.forEach((id, i) => {
        const c = cells[id];
        const v = c.throughput || 0;
        const cut = v > yMax;
        const h = (Math.min(v, yMax) / yMax) * plotH;
        const bx = x0 + 12 + i * (bw + 8);
        parts.push(`<rect x="${bx}" y="${base - h}" width="${bw}" height="${h}" fill="${colorOf(id)}"${id === 'ceiling' ? ' fill-opacity="0.55"' : ''}/>`);
        if (cut) parts.push(`<path d="M${bx - 2} ${base - h + 8} l${bw + 4} -6 M${bx - 2} ${base - h + 13} l${bw + 4} -6" stroke="#fff" stroke-width="2"/>`);
        parts.push(`<text x="${bx + bw / 2}" y="${base - h - 4}" text-anchor="middle">${fmtK(v)}</text>`);
        const m = /^(brokered|per-worker)-(\d+)$/.exec(id);
        const ratio = m ? c.brokeredOver?.[`brokered-${m[2]}`] : undefined;
        if (m && m[1] === 'per-worker' && Number.isFinite(ratio)) {
          parts.push(`<text x="${bx + bw / 2}" y="${base + 26}" text-anchor="middle" fill="#444">${ratio.toFixed(2)}× B÷P</text>`);
        }
        const label = id.replace('brokered-', 'broker ').replace('per-worker-', 'per-w ').replace('main-only', 'main').replace('ceiling', 'server');
        parts.push(`<text x="${bx + bw / 2}" y="${base + 13}" text-anchor="middle">${esc(label)}</text>`);
      });
    });
  });
  parts.push('</svg>');
  return parts.join('\n') + '\n';
}
