/**
 * A unit of work: what the mapper keeps per reservation — its identity map and the change
 * notices of writes not yet known to be committed.
 *
 * The mapper learns of transaction boundaries by wrapping `begin`, `commit`, `rollback` and
 * `release` on the one `Reservation` object it was given (own properties that call the class's
 * methods), since a notice must go out only after the commit and the identity map must be
 * forgotten after a rollback. Calls made through another object for the same reservation (an
 * `attach` in another thread) are not seen; see change-notices.ts for what that means.
 * @module
 */
import type { Reservation } from '../client/reservation.js';
import type { ChangeNotice, ChangeNotices } from './change-notices.js';
import { IdentityMap } from './identity-map.js';

type TxState = 'unknown' | 'open' | 'closed';

/**
 * The identity map and pending notices of one reservation, as seen from this thread.
 *
 * ```ts
 * const uow = unitOf(units, r, notices);
 * uow.record({ class: 'User', key: 1, version: 2, kind: 'update' }); // sent at r.commit()
 * ```
 */
export class UnitOfWork {
  /** One instance per row while the reservation lives. */
  readonly identity = new IdentityMap();
  readonly #notices: ChangeNotices;
  #pending: ChangeNotice[] = [];
  // 'unknown': no begin/commit/rollback seen here, the transaction may have been begun elsewhere.
  #state: TxState = 'unknown';

  /** @internal Built by {@link unitOf}. */
  constructor(notices: ChangeNotices) {
    this.#notices = notices;
  }

  /** Records a successful write: sent at once when known autocommitted, else at commit. */
  record(notice: ChangeNotice): void {
    if (this.#state === 'closed') this.#notices.publish([notice]);
    else this.#pending.push(notice);
  }

  #flush(): void {
    const out = this.#pending;
    this.#pending = [];
    this.#notices.publish(out);
  }

  /** @internal */
  began(): void {
    // Writes before a begin ran outside this transaction.
    this.#flush();
    this.#state = 'open';
  }

  /** @internal */
  committed(): void {
    this.#flush();
    this.#state = 'closed';
  }

  /** @internal */
  rolledBack(): void {
    this.#pending = [];
    this.identity.clear();
    this.#state = 'closed';
  }

  /** @internal Release rolls back an open transaction; anything else was committed. */
  released(): void {
    if (this.#state === 'open') this.#pending = [];
    else this.#flush();
    this.identity.clear();
    this.#state = 'closed';
  }
}

type Hook = 'began' | 'committed' | 'rolledBack' | 'released';

function wrap(r: Reservation, method: 'begin' | 'commit' | 'rollback' | 'release', onSuccess: () => void, onFailure?: () => void): void {
  const original = (r[method] as (...a: unknown[]) => Promise<void>).bind(r);
  Object.defineProperty(r, method, {
    configurable: true,
    writable: true,
    value: async (...args: unknown[]): Promise<void> => {
      try {
        await original(...args);
      } catch (err) {
        onFailure?.();
        throw err;
      }
      onSuccess();
    },
  });
}

/**
 * The unit of work of reservation `r`, created (and its methods wrapped) on first use.
 *
 * ```ts
 * const uow = unitOf(units, r, notices);
 * uow.identity.get('User', 1);
 * ```
 */
export function unitOf(units: WeakMap<Reservation, UnitOfWork>, r: Reservation, notices: ChangeNotices): UnitOfWork {
  let u = units.get(r);
  if (u !== undefined) return u;
  const unit = new UnitOfWork(notices);
  const call = (hook: Hook) => () => unit[hook]();
  wrap(r, 'begin', call('began'));
  wrap(r, 'commit', call('committed'));
  // A failed rollback or release still ends the transaction (the broker rolls back or drops the connection).
  wrap(r, 'rollback', call('rolledBack'), call('rolledBack'));
  wrap(r, 'release', call('released'), call('released'));
  units.set(r, unit);
  u = unit;
  return u;
}
