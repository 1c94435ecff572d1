/**
 * SQLSTATE knowledge both sides need: the broker to evict a session, the calling thread to
 * report a forwarded statement's fatal error as `CONNECTION_LOST`.
 * @module
 */

/** SQLSTATE classes and codes after which a connection must not be reused (HikariCP's list). */
export function isFatalSqlState(state: string | undefined): boolean {
  if (!state) return false;
  return state.startsWith('08') || state === '57P01' || state === '57P02' || state === '57P03';
}
