import { fileURLToPath } from 'node:url';
import { configDefaults, defineConfig } from 'vitest/config';

// Tests import the package by name and get what ships: the built files in dist/.
const dist = (p: string): string => fileURLToPath(new URL(`./dist/src/${p}`, import.meta.url));

export default defineConfig({
  resolve: {
    alias: [
      { find: /^threadbroker\/worker$/, replacement: dist('worker.js') },
      { find: /^threadbroker$/, replacement: dist('index.js') },
    ],
  },
  test: {
    include: ['test/**/*.test.ts'],
    // The full reliability suite (server restarts, long loads) runs with `npm run test:reliability`.
    exclude: [...configDefaults.exclude, 'test/reliability/**'],
    // Integration tests share two real servers; run files one after another to keep the
    // server-side connection counts each test asserts meaningful.
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 60_000,
    setupFiles: ['test/helpers/setup.ts'],
    globalSetup: ['test/helpers/global-setup.ts'],
    typecheck: { enabled: true, include: ['test/**/*.test-d.ts'] },
  },
});
