/**
 * Change notices between threads: after the mapper's write is committed (at once for an
 * autocommitted write, at `commit()` for one made through a reservation), every thread of the
 * process that listens with `model.onChange(fn)` receives `{ class, key, version, kind }`.
 *
 * **A hint, not a data bus.** Notices travel on a `BroadcastChannel` named after the broker, so
 * they reach threads of this process only, asynchronously (typically well under a millisecond
 * after the writer saw its commit succeed), with no delivery guarantee: a notice is lost when the
 * writing thread dies between commit and post, writes made with raw SQL or by other processes
 * send none, a rolled-back reservation sends none, and a write through a reservation whose
 * transaction state this thread cannot see (one begun in another thread) may send a notice for a
 * change that was in the end rolled back. By the time a notice arrives the row may have changed
 * again: a listener re-reads the row (`get(key)`) and compares versions, it never trusts the
 * notice as the row's state.
 * @module
 */
import { BroadcastChannel } from 'node:worker_threads';
import type { KeyValue } from './values.js';

/**
 * One committed change of a mapped row.
 *
 * ```ts
 * users.onChange((n) => { if (n.kind !== 'delete') cache.invalidate(n.key) });
 * ```
 */
export interface ChangeNotice {
  /** The class name in the config. */
  class: string;
  /** The row's key. */
  key: KeyValue;
  /** The row's version after the change (`null` for classes without a version column, and for deletes of an unread row). */
  version: number | bigint | null;
  /** What happened to the row. */
  kind: 'insert' | 'update' | 'delete';
}

/**
 * A listener of {@link ChangeNotice}s.
 *
 * ```ts
 * const log: ChangeListener = (n) => console.log(n.class, n.key, n.kind);
 * ```
 */
export type ChangeListener = (notice: ChangeNotice) => void;

/**
 * The channel name shared by every thread wired to broker `brokerId`.
 *
 * ```ts
 * new BroadcastChannel(channelName(env.brokerId)); // what ChangeNotices listens on
 * ```
 */
export function channelName(brokerId: string): string {
  return `threadbroker:changes:${brokerId}`;
}

function isNotice(v: unknown): v is ChangeNotice {
  const n = v as Partial<ChangeNotice> | null;
  return typeof n === 'object' && n !== null && typeof n.class === 'string' && (n.kind === 'insert' || n.kind === 'update' || n.kind === 'delete');
}

/**
 * This thread's end of the notice channel of one broker. Posting uses one channel object and
 * listening another, so listeners in the writing thread hear its own notices through the same
 * path as every other thread. Both are unref'd: notices never keep a thread alive.
 *
 * ```ts
 * const hub = new ChangeNotices(env.brokerId);
 * const stop = hub.subscribe('User', (n) => cache.delete(n.key));
 * hub.publish([{ class: 'User', key: 1, version: 2, kind: 'update' }]);
 * ```
 */
export class ChangeNotices {
  readonly #name: string;
  readonly #listeners = new Map<ChangeListener, string | undefined>();
  #sender: BroadcastChannel | undefined;
  #receiver: BroadcastChannel | undefined;

  constructor(brokerId: string) {
    this.#name = channelName(brokerId);
  }

  /** Sends committed changes to every listening thread (one message for the batch). */
  publish(notices: readonly ChangeNotice[]): void {
    if (notices.length === 0) return;
    if (this.#sender === undefined) {
      this.#sender = new BroadcastChannel(this.#name);
      this.#sender.unref();
    }
    this.#sender.postMessage(notices);
  }

  /**
   * Calls `fn` for each notice of class `cls` (every class when `undefined`). Returns the
   * function that unsubscribes.
   */
  subscribe(cls: string | undefined, fn: ChangeListener): () => void {
    if (typeof fn !== 'function') throw new TypeError('onChange needs a function');
    // A function subscribed twice is still called once per notice: the map keeps the last filter.
    this.#listeners.set(fn, cls);
    if (this.#receiver === undefined) {
      const ch = new BroadcastChannel(this.#name);
      ch.onmessage = (ev) => this.#deliver((ev as { data: unknown }).data);
      ch.unref();
      this.#receiver = ch;
    }
    return () => {
      this.#listeners.delete(fn);
      if (this.#listeners.size === 0 && this.#receiver !== undefined) {
        this.#receiver.close();
        this.#receiver = undefined;
      }
    };
  }

  #deliver(data: unknown): void {
    if (!Array.isArray(data)) return;
    for (const n of data) {
      if (!isNotice(n)) continue;
      const notice = Object.freeze({ class: n.class, key: n.key, version: n.version ?? null, kind: n.kind });
      for (const [fn, cls] of this.#listeners) {
        if (cls !== undefined && cls !== n.class) continue;
        try {
          fn(notice);
        } catch (err) {
          // A failing listener must not stop the others, nor crash the thread over a hint.
          process.emitWarning(`threadbroker: an onChange listener threw: ${(err as Error)?.message ?? String(err)}`);
        }
      }
    }
  }

  /** Closes both channel objects; listeners hear nothing more. */
  close(): void {
    this.#listeners.clear();
    this.#sender?.close();
    this.#receiver?.close();
    this.#sender = undefined;
    this.#receiver = undefined;
  }
}
