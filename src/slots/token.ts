/**
 * Reservation tokens: `tb1.<broker>.<db>.<slot>.<gen>.<nonce>.<mac>` — the issuing broker, the
 * database row, the slot, its generation, the claim's 128-bit nonce and an HMAC over all of it.
 * The MAC separates forged tokens (`TOKEN_INVALID`) from genuine but stale ones (`TOKEN_EXPIRED`);
 * both are decided in shared memory, without database traffic, with constant-time comparisons.
 * @module
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { Errors } from '../errors.js';
import type { SlotClaim, SlotTable } from './slot-table.js';

/** Longest string accepted as a token; anything longer is refused before it is parsed. */
export const MAX_TOKEN_LENGTH = 128;
/**
 * 16 bytes are 22 base64url characters whose last one carries 4 unused bits. Fix: only the
 * canonical last character (unused bits zero: A, Q, g or w) is accepted. Before, Node's decoder
 * dropped those bits, so each token had 16 spellings that all verified (malleable tokens: a
 * "modified" token was accepted, and per-token logging, rate limits or revocation lists keyed
 * by the string could be sidestepped).
 */
const B64_16 = '[A-Za-z0-9_-]{21}[AQgw]';
const TOKEN_RE = new RegExp(`^tb1\\.([0-9a-f]{16})\\.(\\d{1,4})\\.(\\d{1,5})\\.(-?\\d{1,10})\\.(${B64_16})\\.(${B64_16})$`);

function mac(key: Uint8Array, body: string): Buffer {
  return createHmac('sha256', key).update(body).digest().subarray(0, 16);
}

/** Builds the token of a live claim. */
export function encodeToken(brokerId: string, key: Uint8Array, claim: SlotClaim, nonce: Uint8Array): string {
  const body = `tb1.${brokerId}.${claim.db}.${claim.slot}.${claim.gen}.${Buffer.from(nonce).toString('base64url')}`;
  return `${body}.${mac(key, body).toString('base64url')}`;
}

/**
 * Checks a token against the slot table and returns its claim.
 * Throws `TOKEN_INVALID` (malformed, forged, or issued by another broker — the message names it)
 * or `TOKEN_EXPIRED` (genuine, but released or expired).
 */
export function verifyToken(token: unknown, brokerId: string, key: Uint8Array, table: SlotTable): SlotClaim {
  if (typeof token !== 'string') throw Errors.tokenInvalid('a token is a string');
  if (token.length > MAX_TOKEN_LENGTH) throw Errors.tokenInvalid('too long to be a token');
  const m = TOKEN_RE.exec(token);
  if (m === null) throw Errors.tokenInvalid('malformed token');
  const [, issuer, dbText, slotText, genText, nonceText, macText] = m;
  if (issuer !== brokerId) {
    throw Errors.tokenInvalid(`issued by broker ${issuer}, not by this broker (${brokerId}); route the request to its issuer`);
  }
  const body = token.slice(0, token.length - macText.length - 1);
  const given = Buffer.from(macText, 'base64url');
  if (given.length !== 16 || !timingSafeEqual(given, mac(key, body))) throw Errors.tokenInvalid('signature does not match');
  const claim: SlotClaim = { db: Number(dbText), slot: Number(slotText), gen: Number(genText) };
  if (!table.has(claim.db, claim.slot)) throw Errors.tokenInvalid('names no slot of this broker');
  if (!table.isLive(claim)) throw Errors.tokenExpired('the reservation was released, its transaction ended or its lease expired');
  const nonce = Buffer.from(nonceText, 'base64url');
  const current = table.nonce(claim.db, claim.slot);
  // Genuine MAC and live generation imply the same claim; the nonce check is defence in depth.
  if (nonce.length !== 16 || !timingSafeEqual(nonce, current)) throw Errors.tokenExpired('the reservation was released, its transaction ended or its lease expired');
  return claim;
}
