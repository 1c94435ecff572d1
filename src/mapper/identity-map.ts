/**
 * The identity map of one unit of work (a reservation): one instance per row, so that within a
 * transaction the same key always gives the same object and a change made through one reference
 * is seen through every other. Outside a unit of work the mapper hands out fresh objects.
 * @module
 */
import { keyId } from './values.js';

/**
 * Instances by class and key. Keys compare by value: `1`, `1n` and (for an integer key column,
 * once the row was loaded) the row's own key value name the same entry.
 *
 * ```ts
 * const map = new IdentityMap();
 * map.put('User', 1, u);
 * map.get('User', 1n) === u; // true
 * ```
 */
export class IdentityMap {
  readonly #byClass = new Map<string, Map<string, object>>();

  /** The instance of `cls` with `key`, if this unit of work has one. */
  get(cls: string, key: unknown): object | undefined {
    return this.#byClass.get(cls)?.get(keyId(key));
  }

  /** Registers `obj` as the instance of `cls` with `key`, replacing any other. */
  put(cls: string, key: unknown, obj: object): void {
    let m = this.#byClass.get(cls);
    if (m === undefined) {
      m = new Map();
      this.#byClass.set(cls, m);
    }
    m.set(keyId(key), obj);
  }

  /**
   * The registered instance for a freshly read row, registering `fresh` when there is none: a
   * row read again inside the unit of work yields the instance handed out first, unchanged, so
   * in-memory edits not yet saved are never overwritten by a read.
   */
  merge<T extends object>(cls: string, key: unknown, fresh: T): T {
    const known = this.get(cls, key);
    if (known !== undefined) return known as T;
    this.put(cls, key, fresh);
    return fresh;
  }

  /** Forgets the instance of `cls` with `key` (after a delete). */
  remove(cls: string, key: unknown): void {
    this.#byClass.get(cls)?.delete(keyId(key));
  }

  /** Forgets everything (after a rollback or release). */
  clear(): void {
    this.#byClass.clear();
  }

  /** How many instances are registered. */
  get size(): number {
    let n = 0;
    for (const m of this.#byClass.values()) n += m.size;
    return n;
  }
}
