import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { columnTypeOf } from '../../src/mapper/catalog.js';
import { generateTypes } from '../../src/mapper/codegen.js';

describe('column types from catalog SQL types', () => {
  it('maps PostgreSQL and MySQL spellings to the same column types', () => {
    const cases: [string, string | undefined][] = [
      ['integer', 'integer'], ['smallint', 'integer'], ['int(11)', 'integer'], ['mediumint(8) unsigned', 'integer'], ['tinyint(4)', 'integer'],
      ['bigint', 'bigint'], ['bigint(20) unsigned', 'bigint'],
      ['numeric', 'numeric'], ['decimal(10,2)', 'numeric'],
      ['double precision', 'float'], ['real', 'float'], ['double', 'float'], ['float', 'float'],
      ['boolean', 'boolean'], ['tinyint(1)', 'boolean'],
      ['text', 'text'], ['character varying', 'text'], ['varchar(255)', 'text'], ['longtext', 'text'], ['uuid', 'text'], ["enum('a','b')", 'text'],
      ['date', 'date'], ['timestamp without time zone', 'timestamp'], ['timestamp with time zone', 'timestamp'], ['datetime(3)', 'timestamp'],
      ['json', 'json'], ['jsonb', 'json'], ['bytea', 'bytes'], ['longblob', 'bytes'], ['varbinary(16)', 'bytes'],
      ['ARRAY', undefined], ['interval', undefined], ['time without time zone', undefined], ['USER-DEFINED', undefined],
    ];
    for (const [sql, type] of cases) expect(columnTypeOf(sql), sql).toBe(type);
  });
});

describe('generateTypes', () => {
  const config = {
    classes: {
      User: { database: 'main', table: 'users', key: 'id', version: 'version', attributes: { id: 'id', name: 'full_name', email: 'email', version: 'version' }, types: { id: 'bigint' as const, version: 'integer' as const } },
      Order: { database: 'legacy', table: 'orders', key: 'id', attributes: ['id', 'total', 'paid', 'placed', 'meta', 'blob'] },
    },
  };
  const catalog = {
    legacy: {
      orders: {
        primaryKey: ['id'],
        columns: {
          id: { sqlType: 'int(11)', type: 'integer' as const, nullable: false },
          total: { sqlType: 'decimal(10,2)', type: 'numeric' as const, nullable: false },
          paid: { sqlType: 'tinyint(1)', type: 'boolean' as const, nullable: true },
          placed: { sqlType: 'datetime', type: 'timestamp' as const, nullable: true },
          meta: { sqlType: 'json', type: 'json' as const, nullable: true },
          blob: { sqlType: 'blob', type: 'bytes' as const, nullable: true },
        },
      },
    },
  };

  it('writes one interface per class from config types, else catalog types, else unknown', () => {
    const out = generateTypes(config, catalog);
    expect(out).toContain('export interface User {\n  /** bigint */\n  id: number | bigint;\n  /** untyped (column full_name) */\n  name: unknown;');
    expect(out).toContain('  version: number;');
    expect(out).toContain('  total: string;\n');
    expect(out).toContain('  paid: boolean | null;');
    expect(out).toContain('  placed: Date | null;');
    expect(out).toContain('  meta: JsonValue | null;');
    expect(out).toContain('  blob: Uint8Array | null;');
    expect(out).toContain('export interface Classes {\n  User: User;\n  Order: Order;\n}');
  });

  it('writes TypeScript that compiles under strict settings', () => {
    const source = `${generateTypes(config, catalog)}\nconst u: Classes['User'] = { id: 1n, name: 'x', email: null, version: 1 };\nexport { u };\n`;
    const out = ts.transpileModule(source, { reportDiagnostics: true, compilerOptions: { strict: true, module: ts.ModuleKind.ESNext } });
    expect(out.diagnostics).toEqual([]);
    const host = ts.createCompilerHost({ strict: true, noEmit: true, types: [] });
    const read = host.getSourceFile.bind(host);
    host.getSourceFile = (name, lang) => (name === 'gen.ts' ? ts.createSourceFile(name, source, lang) : read(name, lang));
    const program = ts.createProgram(['gen.ts'], { strict: true, noEmit: true, types: [], target: ts.ScriptTarget.ES2022, lib: ['lib.es2022.d.ts'] }, host);
    expect(ts.getPreEmitDiagnostics(program).map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'))).toEqual([]);
  });

  it('refuses class and attribute names that are not plain identifiers', () => {
    expect(() => generateTypes({ classes: { 'Bad-Name': config.classes.Order } })).toThrow(expect.objectContaining({ code: 'IDENTIFIER_INVALID' }));
    expect(() => generateTypes({ classes: { X: { ...config.classes.Order, attributes: ['__proto__'] } } })).toThrow(expect.objectContaining({ code: 'IDENTIFIER_INVALID' }));
  });
});
