/**
 * The caller's stack on errors that come back over the port, taken when the call fails rather
 * than at every call (as `pg` does): taking a stack costs the calling thread ~2–6 µs, as much as
 * a quarter of a plain statement's CPU in the thread (issue 8).
 * @module
 */
import { BrokerError } from '../errors.js';

/** No call site taken up front: errors get theirs from {@link atCaller}. */
export const NO_SITE: { stack?: string } = Object.freeze({});

/**
 * Gives a failed call's error the caller's stack, then rethrows it. Attach it with `.catch` (or
 * `.then`'s second argument) to the promise the public method returns or awaits: it then runs as
 * a reaction of a promise the caller awaits, and V8's async stack traces name the caller's
 * awaiting functions (`at async handler (app.js:12:5)`). A caller that only chains with `.then`
 * gets the frames of the functions that await that chain.
 *
 * ```ts
 * return client.request(req, NO_SITE).then(toResult, atCaller);
 * ```
 */
export function atCaller(err: unknown): never {
  if (err instanceof BrokerError) Error.captureStackTrace(err, atCaller);
  throw err;
}
