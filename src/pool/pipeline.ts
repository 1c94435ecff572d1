/**
 * Pipelining of forwarded statements, the pool's rules for which statements share a connection:
 * the recent pace of each statement text, and how a group grows behind its first statement. The
 * pool decides when a group forms (a connection coming back to waiters, statements arriving
 * together at idle connections); this module decides who joins.
 * @module
 */
import type { ForwardStatement } from '../drivers/driver.js';

/** Weight of the newest answer in the pace of a forwarded statement text. */
const PACE_WEIGHT = 0.2;
/** Most statement texts whose pace is kept (the oldest is forgotten). */
const PACE_TEXTS = 1000;

/** A forwarded statement on its way to a connection. */
export interface PipeStatement extends ForwardStatement {
  /** It cannot leave a transaction open, so it may share a pipeline with the ones behind it. */
  shareable: boolean;
  /** Receives the statement's answer once it runs. */
  settle: (answer: Promise<Uint8Array>) => void;
}

/** A statement that may join a group: its statement and when its acquire deadline falls due (performance.now() clock). */
export interface Candidate {
  pipe?: PipeStatement | undefined;
  deadline: number;
}

/**
 * The recent time of a forwarded statement's answer, in ms, per statement text: an exponential
 * moving average over at most 1,000 texts, unknown for a text never answered.
 */
export class Paces {
  readonly #paces = new Map<string, number>();

  /** Records answer times as the answers of a pipeline come in: each since the one before it (the first since now). */
  track(stmts: readonly { sql: string }[], answers: readonly Promise<unknown>[]): void {
    let last = performance.now();
    for (let i = 0; i < stmts.length; i++) {
      const observe = (): void => {
        const now = performance.now();
        this.#observe(stmts[i].sql, now - last);
        last = now;
      };
      answers[i].then(observe, observe);
    }
  }

  /**
   * Grows a group behind `first`, in order, up to `depth` statements: the next candidate
   * (`peek`) joins while it is shareable and, at the recent pace of the texts ahead of it, its
   * turn comes before its deadline; `take` removes it from where it waited. Behind a slow or new
   * text nothing joins: the others wait, and time out, as without pipelining.
   */
  group(first: PipeStatement, depth: number, now: number, peek: () => Candidate | undefined, take: () => void): PipeStatement[] {
    const group = [first];
    let ahead = this.#paces.get(first.sql);
    for (let next = peek(); group.length < depth && next?.pipe?.shareable === true && ahead !== undefined && now + ahead <= next.deadline; next = peek()) {
      take();
      group.push(next.pipe);
      const pace = this.#paces.get(next.pipe.sql);
      ahead = pace === undefined ? undefined : ahead + pace;
    }
    return group;
  }

  #observe(sql: string, millis: number): void {
    const pace = this.#paces.get(sql);
    if (pace !== undefined) {
      this.#paces.set(sql, pace + PACE_WEIGHT * (millis - pace));
      return;
    }
    if (this.#paces.size >= PACE_TEXTS) this.#paces.delete(this.#paces.keys().next().value as string);
    this.#paces.set(sql, millis);
  }
}
