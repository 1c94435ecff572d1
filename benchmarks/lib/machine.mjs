/**
 * How much CPU *other* tenants of the machine used during a window (Linux /proc): every process
 * except this one, the database servers' sessions of the harness's own logins (`tb_bench*`), the
 * ceiling tools and kernel threads. On a shared machine this tells a clean round from a disturbed one.
 * Read only at window boundaries (a few ms), never inside a measurement.
 */
import { readdirSync, readFileSync } from 'node:fs';

const TICKS = 100; // USER_HZ on Linux
const OURS = new Set(['pgbench', 'mysqlslap', 'mariadbd', 'mysqld']);
const classified = new Map(); // "pid starttime" -> true when it is ours or neutral

function classify(pid, comm, fields) {
  const key = `${pid} ${fields[19]}`;
  let ours = classified.get(key);
  if (ours === undefined) {
    ours = pid === process.pid || OURS.has(comm) || fields[1] === '2' || pid === 2; // fields[1] is ppid: kthreadd's children
    if (!ours && comm === 'postgres') {
      try {
        ours = readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(' tb_bench');
      } catch {
        ours = false;
      }
    }
    classified.set(key, ours);
  }
  return ours;
}

/** CPU ticks of every process not ours, by pid (undefined off Linux). */
export function foreignTicks() {
  let pids;
  try {
    pids = readdirSync('/proc').filter((n) => n.charCodeAt(0) >= 48 && n.charCodeAt(0) <= 57);
  } catch {
    return undefined;
  }
  const out = new Map();
  for (const p of pids) {
    let stat;
    try {
      stat = readFileSync(`/proc/${p}/stat`, 'utf8');
    } catch {
      continue; // gone
    }
    const close = stat.lastIndexOf(')');
    const comm = stat.slice(stat.indexOf('(') + 1, close);
    const fields = stat.slice(close + 2).split(' '); // fields[0] is field 3 (state)
    const pid = Number(p);
    if (classify(pid, comm, fields)) continue;
    out.set(pid, Number(fields[11]) + Number(fields[12]));
  }
  return out;
}

/** Cores used by other tenants between two `foreignTicks()` snapshots `seconds` apart. */
export function foreignCores(a, b, seconds) {
  if (a === undefined || b === undefined || !(seconds > 0)) return null;
  let ticks = 0;
  for (const [pid, t] of b) ticks += t - (a.get(pid) ?? 0); // a process born in the window counts from 0
  return ticks / TICKS / seconds;
}
