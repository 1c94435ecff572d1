/**
 * Forwarded statements and answers of 1 KiB and more cross the port by transfer (their buffers
 * move between threads, uncopied). What a worker gets must be exactly what the server sent, also
 * when many such answers and statements travel in one message.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Broker } from 'threadbroker';
import { KINDS, configFor, ph } from '../helpers/test-setup.js';

const API = new URL('../fixtures/workers/core-api.mjs', import.meta.url);

interface Api {
  query(sql: string, params?: unknown[]): Promise<Record<string, unknown>[]>;
}

for (const kind of KINDS) {
  describe(`${kind}: large forwarded statements and answers in a worker`, () => {
    let broker: Broker;
    beforeAll(async () => {
      broker = await Broker.start(configFor(kind, { max: 2 }));
    });
    afterAll(async () => {
      await broker.close();
    });

    // 300 rows, each with the parameter three times: a statement of ~2 KiB, an answer of ~2 MiB.
    const sql =
      kind === 'pg'
        ? `select g as i, repeat(${ph(kind, 1)}::text, 3) as t from generate_series(1, 300) g order by g`
        : `select seq as i, repeat(${ph(kind, 1)}, 3) as t from seq_1_to_300 order by seq`;

    it('arrive whole, in one batch of many, each with its own values', async () => {
      // The spawned worker ends with the broker.
      const api = broker.spawn<Api>(API);
      const values = Array.from({ length: 12 }, (_, k) => `${k}:`.padEnd(2000, String.fromCharCode(97 + k)));
      // Issued together: the worker sends them in one message, the broker answers several in one.
      const results = await Promise.all(values.map((v) => api.query(sql, [v])));
      results.forEach((rows, k) => {
        expect(rows).toHaveLength(300);
        expect(rows.map((r) => Number(r.i))).toEqual(Array.from({ length: 300 }, (_, j) => j + 1));
        for (const r of rows) expect(r.t).toBe(values[k].repeat(3));
      });
      // Small ones (copied, not transferred) next to large ones in the same batch.
      const mixed = await Promise.all([api.query('select 1 as x'), api.query(sql, [values[0]]), api.query('select 2 as x')]);
      expect(mixed[0]).toEqual([{ x: 1 }]);
      expect(mixed[1]).toHaveLength(300);
      expect(mixed[2]).toEqual([{ x: 2 }]);
    });
  });
}
