/**
 * The size of a request as it crosses a MessagePort (its SQL text and parameters), for the
 * `maxRequestBytes` limit: checked in the calling thread before the request is cloned towards
 * the main thread, and again by the broker for threads that bypass the client (RELIABILITY.md S6).
 * @module
 */

/** Deeper than any parameter a driver can bind; deeper values count as a scalar each. */
const MAX_DEPTH = 32;

/**
 * A close estimate of the bytes a structured clone of `sql` and `params` holds: a character
 * counts one byte, a number eight, binary data its length. Counting stops soon after `limit`
 * is passed (0 = count everything), so a huge request costs no more than the limit to refuse.
 *
 * ```ts
 * requestBytes('select $1', ['abc'], 1 << 20); // 12
 * ```
 */
export function requestBytes(sql: string, params: readonly unknown[] | undefined, limit = 0): number {
  const budget = limit > 0 ? limit : Number.MAX_SAFE_INTEGER;
  const n = typeof sql === 'string' ? sql.length : 0;
  if (params === undefined || n > budget) return n;
  return n + sizeOf(params, 0, budget - n);
}

function sizeOf(v: unknown, depth: number, budget: number): number {
  switch (typeof v) {
    case 'string':
      return v.length;
    case 'bigint':
      return 16;
    case 'object': {
      if (v === null) return 8;
      if (ArrayBuffer.isView(v) || v instanceof ArrayBuffer) return v.byteLength;
      if (v instanceof Date || depth >= MAX_DEPTH) return 8;
      let n = 8;
      if (Array.isArray(v)) {
        for (const item of v) {
          n += sizeOf(item, depth + 1, budget - n);
          if (n > budget) return n;
        }
        return n;
      }
      for (const key of Object.keys(v)) {
        n += key.length + sizeOf((v as Record<string, unknown>)[key], depth + 1, budget - n);
        if (n > budget) return n;
      }
      return n;
    }
    default:
      return 8;
  }
}
