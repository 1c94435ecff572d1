import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { Reservation } from '../../src/client/reservation.js';
import { ChangeNotices, type ChangeNotice } from '../../src/mapper/change-notices.js';
import { IdentityMap } from '../../src/mapper/identity-map.js';
import { unitOf, type UnitOfWork } from '../../src/mapper/unit-of-work.js';

const notice = (key: number): ChangeNotice => ({ class: 'Item', key, version: 1, kind: 'insert' });

/**
 * A listener on its own channel object, as another thread would have. `settle(sender)` posts a
 * marker through `sender` and resolves when it arrives: notices of one sender arrive in order,
 * so everything `sender` posted before has arrived too.
 */
function listen(brokerId: string) {
  const hub = new ChangeNotices(brokerId);
  const got: ChangeNotice[] = [];
  const items: ChangeNotice[] = [];
  const waiters: (() => void)[] = [];
  hub.subscribe(undefined, (n) => (n.class === '__marker__' ? waiters.shift()?.() : got.push(n)));
  hub.subscribe('Item', (n) => items.push(n));
  return {
    got,
    items,
    settle: (sender: ChangeNotices) => new Promise<void>((resolve) => {
      waiters.push(resolve);
      sender.publish([{ class: '__marker__', key: 0, version: null, kind: 'update' }]);
    }),
    stop: () => hub.close(),
  };
}

describe('IdentityMap', () => {
  it('keeps one instance per class and key value', () => {
    const m = new IdentityMap();
    const a = { id: 1 };
    expect(m.merge('U', 1, a)).toBe(a);
    expect(m.merge('U', 1n, { id: 1 })).toBe(a);
    expect(m.get('U', '1')).toBeUndefined();
    expect(m.get('V', 1)).toBeUndefined();
    m.remove('U', 1);
    expect(m.get('U', 1)).toBeUndefined();
    m.put('U', 2, a);
    expect(m.size).toBe(1);
    m.clear();
    expect(m.size).toBe(0);
  });
});

describe('change notices', () => {
  it('reach listeners of the same broker only, filtered by class', async () => {
    const id = randomBytes(8).toString('hex');
    const l = listen(id);
    const other = listen(randomBytes(8).toString('hex'));
    const hub = new ChangeNotices(id);
    hub.publish([notice(1), { class: 'Tag', key: 'x', version: null, kind: 'delete' }]);
    await l.settle(hub);
    expect(l.got).toEqual([notice(1), { class: 'Tag', key: 'x', version: null, kind: 'delete' }]);
    expect(l.items).toEqual([notice(1)]);
    expect(other.got).toEqual([]);
    l.stop();
    other.stop();
    hub.close();
  });
});

describe('unit of work', () => {
  function fakeReservation(): Reservation & { calls: string[] } {
    const calls: string[] = [];
    const ok = (name: string) => async () => { calls.push(name); };
    return { calls, begin: ok('begin'), commit: ok('commit'), rollback: ok('rollback'), release: ok('release') } as unknown as Reservation & { calls: string[] };
  }

  it('sends notices at commit, drops them at rollback, and forgets instances', async () => {
    const id = randomBytes(8).toString('hex');
    const l = listen(id);
    const hub = new ChangeNotices(id);
    const units = new WeakMap<Reservation, UnitOfWork>();
    const r = fakeReservation();
    const u = unitOf(units, r, hub);
    expect(unitOf(units, r, hub)).toBe(u);
    await r.begin();
    u.record(notice(1));
    u.identity.put('Item', 1, { id: 1 });
    await l.settle(hub);
    expect(l.got).toEqual([]);
    await r.commit();
    await l.settle(hub);
    expect(l.got).toEqual([notice(1)]);
    expect(u.identity.size).toBe(1);
    await r.begin();
    u.record(notice(2));
    await r.rollback();
    expect(u.identity.size).toBe(0);
    u.record(notice(3)); // after a commit or rollback seen here: autocommitted, sent at once
    await l.settle(hub);
    expect(l.got).toEqual([notice(1), notice(3)]);
    expect(r.calls).toEqual(['begin', 'commit', 'begin', 'rollback']);
    l.stop();
    hub.close();
  });

  it('on release, sends what ran outside a transaction and drops what an open one rolls back', async () => {
    const id = randomBytes(8).toString('hex');
    const l = listen(id);
    const hub = new ChangeNotices(id);
    const units = new WeakMap<Reservation, UnitOfWork>();
    const plain = fakeReservation();
    unitOf(units, plain, hub).record(notice(1));
    await plain.release();
    const open = fakeReservation();
    const u = unitOf(units, open, hub);
    await open.begin();
    u.record(notice(2));
    await open.release();
    await l.settle(hub);
    expect(l.got).toEqual([notice(1)]);
    l.stop();
    hub.close();
  });
});
