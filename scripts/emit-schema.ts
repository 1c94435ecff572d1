/**
 * Writes `config.schema.json` at the package root from the config schema, so editors complete
 * and check `config.json5`. Runs after `tsc` as `node dist/scripts/emit-schema.js [outFile]`.
 * @module
 */

import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { configJsonSchema } from '../src/config/schema.js';

/**
 * Writes the JSON Schema to `outFile` and returns the path written.
 *
 * ```ts
 * emitSchema('/tmp/config.schema.json');
 * ```
 */
export function emitSchema(outFile: string): string {
  writeFileSync(outFile, `${JSON.stringify(configJsonSchema(), null, 2)}\n`);
  return outFile;
}

// Compiled to dist/scripts/emit-schema.js, so the package root is two levels up.
const defaultOut = fileURLToPath(new URL('../../config.schema.json', import.meta.url));
if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  console.log(`wrote ${emitSchema(process.argv[2] ?? defaultOut)}`);
}
