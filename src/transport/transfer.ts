/**
 * Which buffers cross a port by transfer rather than by copy: forwarded statements and answers
 * from {@link TRANSFER_MIN_BYTES} up, each encoded for one request and never read again by the
 * side that sends it.
 * @module
 */
import { TRANSFER_MIN_BYTES } from './protocol.js';

/**
 * Adds `bytes`' buffer to `list` when it may be transferred: large enough, and owned whole by
 * `bytes` (transferring the buffer under a view would detach whatever else shares it).
 */
export function addTransferable(list: ArrayBuffer[] | undefined, bytes: Uint8Array | undefined): ArrayBuffer[] | undefined {
  if (bytes === undefined || bytes.byteLength < TRANSFER_MIN_BYTES || bytes.byteOffset !== 0) return list;
  const buffer = bytes.buffer;
  if (!(buffer instanceof ArrayBuffer) || buffer.byteLength !== bytes.byteLength) return list;
  (list ??= []).push(buffer);
  return list;
}
