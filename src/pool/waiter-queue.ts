/**
 * The pool's FIFO of waiters. A waiter that times out or is dropped stays in the array, marked
 * done, until it reaches the head (removing it from the middle would be O(n)); `live` counts
 * only the waiters still waiting, for `stats()`, the queue limit and how many connections to open.
 * @module
 */

/** What the queue needs of a waiter. */
export interface Waitable {
  done: boolean;
  timer: NodeJS.Timeout | undefined;
}

/** FIFO with lazy removal and a head index (shift() on a long array is O(n)). */
export class WaiterQueue<W extends Waitable> {
  #items: W[] = [];
  #head = 0;
  #live = 0;

  /** Waiters still waiting. */
  get live(): number {
    return this.#live;
  }

  /** Appends a waiter. */
  push(w: W): void {
    this.#items.push(w);
    this.#live++;
  }

  /** Marks a live waiter done (granted, timed out, dropped or refused) and stops its timer. */
  settle(w: W): void {
    w.done = true;
    this.#live--;
    if (w.timer !== undefined) clearTimeout(w.timer);
    this.#compact();
  }

  /** The oldest live waiter, left in place, or undefined. */
  peek(): W | undefined {
    this.#compact();
    return this.#head < this.#items.length ? this.#items[this.#head] : undefined;
  }

  /** Takes the oldest live waiter, settled, or undefined. */
  shift(): W | undefined {
    while (this.#head < this.#items.length) {
      const w = this.#items[this.#head];
      this.#items[this.#head] = undefined as unknown as W;
      this.#head++;
      if (!w.done) {
        this.settle(w);
        return w;
      }
    }
    this.#compact();
    return undefined;
  }

  /** Settles and returns every live waiter that `pick` selects (all when absent). */
  removeWhere(pick: (w: W) => boolean = () => true): W[] {
    const out: W[] = [];
    for (let i = this.#head; i < this.#items.length; i++) {
      const w = this.#items[i];
      if (w.done || !pick(w)) continue;
      w.done = true;
      this.#live--;
      if (w.timer !== undefined) clearTimeout(w.timer);
      out.push(w);
    }
    if (out.length > 0) this.#compact();
    return out;
  }

  #compact(): void {
    // Drop settled waiters at the head, then reclaim the array's front when it is mostly empty.
    while (this.#head < this.#items.length && this.#items[this.#head].done) {
      this.#items[this.#head] = undefined as unknown as W;
      this.#head++;
    }
    if (this.#head === this.#items.length) {
      this.#items = [];
      this.#head = 0;
    } else if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
  }
}
