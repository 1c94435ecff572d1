/**
 * Errors cross threads on purpose: only the code, the message and whitelisted server fields go
 * over (never `cause`, client or config objects), and the receiver rebuilds a `BrokerError` whose
 * stack is the caller's own (STYLE.md point 13).
 * @module
 */
import { BrokerError, FIELD_KEYS, type ErrorCode } from '../errors.js';
import type { WireError } from './protocol.js';

/** Turns any thrown value into a wire error. Non-BrokerErrors become `DATABASE_ERROR`s with their message only. */
export function serializeError(err: unknown): WireError {
  if (err instanceof BrokerError) {
    let fields: Record<string, string | number> | undefined;
    for (const key of FIELD_KEYS) {
      const v = (err as unknown as Record<string, unknown>)[key];
      if (typeof v === 'string' || typeof v === 'number') (fields ??= {})[key] = v;
    }
    return fields ? { code: err.code, message: err.message, fields } : { code: err.code, message: err.message };
  }
  const message = err instanceof Error ? err.message : String(err);
  return { code: err instanceof TypeError || err instanceof RangeError ? 'INVALID_ARGUMENT' : 'DATABASE_ERROR', message };
}

/**
 * Rebuilds the error in the receiving thread. `callSite` is an Error captured where the caller
 * made the request, so the stack points at user code, not at the port's message handler.
 */
export function deserializeError(wire: WireError, callSite?: { stack?: string }): BrokerError {
  const err = new BrokerError(wire.code as ErrorCode, wire.message, wire.fields as never);
  if (callSite?.stack) {
    const frames = callSite.stack.slice(callSite.stack.indexOf('\n') + 1);
    err.stack = `BrokerError: ${wire.message}\n${frames}`;
  }
  return err;
}
