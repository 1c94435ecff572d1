/**
 * Small helpers shared by the reservation tests (test/integration/reservation-*,
 * test/threads/reservation-*).
 */
import { threadId } from 'node:worker_threads';
import type { Broker, BrokerError } from 'threadbroker';
import type { DriverKind } from '../../src/config/types.js';
import { SlotTable } from '../../src/slots/slot-table.js';
import type { EnvData } from '../../src/transport/protocol.js';

/** The broker's slot table, as a thread sees it (test-only peek through a raw hello). */
export async function slotTableOf(broker: Broker): Promise<SlotTable> {
  const port = broker.port();
  const env = await new Promise<EnvData>((resolve) => {
    port.once('message', (m: { env: EnvData }) => resolve(m.env));
    port.postMessage({ t: 'hello', v: 1, thread: threadId });
  });
  port.close();
  return new SlotTable(env.slotCounts, env.slots);
}

/** Polls every 2 ms until `cond` holds; fails after `millis` (a bound, not a sleep). */
export async function until(cond: () => boolean | Promise<boolean>, what: string, millis = 5000): Promise<void> {
  const end = Date.now() + millis;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

/** Settles to the error code, or OK. */
export async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'OK';
  } catch (err) {
    return (err as BrokerError).code ?? String(err);
  }
}

export const sleepSql = (kind: DriverKind, s: number) => (kind === 'pg' ? `select pg_sleep(${s})` : `select sleep(${s})`);
