/**
 * The ledger oracle (RELIABILITY.md "Core oracles"): every write carries a client-generated
 * `op_id` and lands in a table keyed by it; transfers between accounts ride in reserved
 * transactions, so the bank invariant (the sum of balances, and each balance against the
 * transfers the ledger holds) catches partial transactions.
 *
 * - every acknowledged op is present exactly once;
 * - every op that failed with a definite error is absent;
 * - every op whose outcome is unknown (COMMIT_OUTCOME_UNKNOWN, a connection lost under an
 *   autocommit write) is resolved — by `txid_status` of the transaction id the error carried
 *   (PostgreSQL), which must agree with the ledger, or by looking its `op_id` up — never retried.
 */
import type { DriverKind } from '../../src/config/types.js';
import { Admin, waitFor } from './server-admin.js';
import { BROKER_USER } from './test-setup.js';

/** What a client knows of one op. */
export interface OpOutcomes {
  /** Acknowledged: the write (or its transaction's COMMIT) answered success. */
  ack: string[];
  /** Failed with a definite error: nothing of it may be visible. */
  failed: string[];
  /** Outcome unknown; `xid` when the error carried one. */
  unknown: { opId: string; xid?: string; code: string }[];
}

/** What the oracle found. */
export interface LedgerReport {
  acked: number;
  lost: string[];
  phantom: string[];
  duplicated: number;
  unknown: number;
  unknownCommitted: number;
  unknownAborted: number;
  /** Unknown ops whose transaction status disagrees with the ledger (must be 0). */
  xidMismatch: string[];
  /** Accounts whose balance does not match the transfers in the ledger (partial transactions). */
  partial: number;
  sumBefore: number;
  sumAfter: number;
}

/** Classifies an error code of an autocommit write or of a transaction. */
export function outcomeOf(code: string | undefined): 'failed' | 'unknown' {
  switch (code) {
    case 'DATABASE_ERROR':
    case 'ACQUIRE_TIMEOUT':
    case 'QUEUE_FULL':
    case 'POOL_DEADLOCK':
    case 'TOKEN_INVALID':
    case 'TOKEN_EXPIRED':
    case 'TX_CONNECTION_LOST':
    case 'INVALID_ARGUMENT':
    case 'REQUEST_TOO_LARGE':
    case 'UNKNOWN_DATABASE':
      return 'failed';
    default:
      // CONNECTION_LOST, QUERY_TIMEOUT, COMMIT_OUTCOME_UNKNOWN, BROKER_CLOSED, THREAD_EXITED, ...:
      // the statement may have reached the server.
      return 'unknown';
  }
}

/** The ledger and accounts tables of one test, per broker login. */
export class Ledger {
  readonly kind: DriverKind;
  readonly ledger: string;
  readonly accounts: string;
  readonly rows: string;
  readonly #admin: Admin;
  readonly #accountCount: number;
  readonly #initial: number;

  constructor(kind: DriverKind, admin: Admin, name: string, accounts = 16, initial = 1_000_000) {
    this.kind = kind;
    this.#admin = admin;
    this.ledger = `rel_${name}_ledger_${BROKER_USER}`;
    this.accounts = `rel_${name}_acct_${BROKER_USER}`;
    this.rows = `rel_${name}_rows_${BROKER_USER}`;
    this.#accountCount = accounts;
    this.#initial = initial;
  }

  /** Drops and creates the tables; fills the accounts and a 1,000-row table for reads. */
  async create(readRows = 1000): Promise<void> {
    const a = this.#admin;
    await a.exec(`drop table if exists ${this.ledger}`, `drop table if exists ${this.accounts}`, `drop table if exists ${this.rows}`);
    if (this.kind === 'pg') {
      await a.exec(
        `create table ${this.ledger} (op_id varchar(36) primary key, worker int not null, kind varchar(10) not null, acct_from int, acct_to int, amount int, note varchar(40))`,
        `create table ${this.accounts} (id int primary key, balance bigint not null)`,
        `create table ${this.rows} (id int primary key, label varchar(40) not null, n bigint not null)`,
        `grant all on ${this.ledger}, ${this.accounts}, ${this.rows} to ${BROKER_USER}`,
        `insert into ${this.accounts} select g, ${this.#initial} from generate_series(1, ${this.#accountCount}) g`,
        `insert into ${this.rows} select g, 'row-' || g, g * 7 from generate_series(1, ${readRows}) g`,
      );
    } else {
      await a.exec(
        `create table ${this.ledger} (op_id varchar(36) primary key, worker int not null, kind varchar(10) not null, acct_from int, acct_to int, amount int, note varchar(40)) engine=innodb`,
        `create table ${this.accounts} (id int primary key, balance bigint not null) engine=innodb`,
        `create table ${this.rows} (id int primary key, label varchar(40) not null, n bigint not null) engine=innodb`,
        `insert into ${this.accounts} select seq, ${this.#initial} from seq_1_to_${this.#accountCount}`,
        `insert into ${this.rows} select seq, concat('row-', seq), seq * 7 from seq_1_to_${readRows}`,
      );
    }
  }

  async drop(): Promise<void> {
    await this.#admin.exec(`drop table if exists ${this.ledger}`, `drop table if exists ${this.accounts}`, `drop table if exists ${this.rows}`);
  }

  /** The names a worker needs. */
  tables(): { ledger: string; accounts: string; rows: string; accountCount: number } {
    return { ledger: this.ledger, accounts: this.accounts, rows: this.rows, accountCount: this.#accountCount };
  }

  /** Checks the outcomes of every client against the tables. */
  async verify(outcomes: OpOutcomes): Promise<LedgerReport> {
    const a = this.#admin;
    const present = new Set((await a.rows(`select op_id from ${this.ledger}`)).map((r) => String(r.op_id)));
    const duplicated = await a.scalar(`select count(*) as n from (select op_id from ${this.ledger} group by op_id having count(*) > 1) d`);
    const lost = outcomes.ack.filter((id) => !present.has(id));
    const phantom = outcomes.failed.filter((id) => present.has(id));
    let unknownCommitted = 0;
    let unknownAborted = 0;
    const xidMismatch: string[] = [];
    for (const u of outcomes.unknown) {
      const isPresent = present.has(u.opId);
      if (isPresent) unknownCommitted++;
      else unknownAborted++;
      if (u.xid !== undefined && this.kind === 'pg') {
        // The server settles an in-progress transaction once it notices its session is gone.
        let status = '';
        await waitFor(`transaction ${u.xid} to settle`, async () => {
          status = String((await a.rows(`select txid_status($1::bigint) as s`, [u.xid]))[0]?.s);
          return status !== 'in progress';
        }, 30_000, 20);
        if ((status === 'committed') !== isPresent) xidMismatch.push(`${u.opId}: ${status} but ${isPresent ? 'present' : 'absent'}`);
      }
    }
    const sumAfter = await a.scalar(`select coalesce(sum(balance), 0) as n from ${this.accounts}`);
    // Each balance must be the initial one plus the transfers the ledger holds: a transaction
    // that was half applied shows up here even when the sum stays constant.
    const flows = await a.rows(
      `select acct.id as id, acct.balance as balance,
              coalesce((select sum(amount) from ${this.ledger} l where l.kind = 'transfer' and l.acct_to = acct.id), 0)
            - coalesce((select sum(amount) from ${this.ledger} l where l.kind = 'transfer' and l.acct_from = acct.id), 0) as net
         from ${this.accounts} acct`,
    );
    const partial = flows.filter((r) => Number(r.balance) !== this.#initial + Number(r.net)).length;
    return {
      acked: outcomes.ack.length,
      lost,
      phantom,
      duplicated,
      unknown: outcomes.unknown.length,
      unknownCommitted,
      unknownAborted,
      xidMismatch,
      partial,
      sumBefore: this.#initial * this.#accountCount,
      sumAfter,
    };
  }
}

/** Merges the outcome lists of several clients. */
export function mergeOutcomes(parts: readonly OpOutcomes[]): OpOutcomes {
  return {
    ack: parts.flatMap((p) => p.ack),
    failed: parts.flatMap((p) => p.failed),
    unknown: parts.flatMap((p) => p.unknown),
  };
}
