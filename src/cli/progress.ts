/**
 * A small progress display for the demo: a spinner while a step runs (on a terminal only), then
 * one line with the outcome and its duration.
 * @module
 */

const FRAMES = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

/** Runs steps one by one and prints their outcome. */
export class Progress {
  readonly #out: NodeJS.WritableStream & { isTTY?: boolean };
  constructor(out: NodeJS.WritableStream & { isTTY?: boolean }) {
    this.#out = out;
  }

  /** Prints a line as is. */
  line(text = ''): void {
    this.#out.write(text + '\n');
  }

  /** Runs `fn` under a spinner labelled `title`; prints ✔ or ✖ with the elapsed time. */
  async step<T>(title: string, fn: (update: (detail: string) => void) => Promise<T>): Promise<T> {
    const started = performance.now();
    let frame = 0;
    let detail = '';
    const tty = this.#out.isTTY === true;
    const draw = (): void => {
      if (tty) this.#out.write(`\r\x1b[2K${FRAMES[frame++ % FRAMES.length]} ${title}${detail ? ` — ${detail}` : ''}`);
    };
    const timer = tty ? setInterval(draw, 80) : undefined;
    draw();
    try {
      const out = await fn((d) => {
        detail = d;
      });
      this.#finish('✔', title, started, tty);
      return out;
    } catch (err) {
      this.#finish('✖', title, started, tty);
      throw err;
    } finally {
      if (timer) clearInterval(timer);
    }
  }

  #finish(mark: string, title: string, started: number, tty: boolean): void {
    const ms = Math.round(performance.now() - started);
    this.#out.write(`${tty ? '\r\x1b[2K' : ''}${mark} ${title} (${ms} ms)\n`);
  }
}
