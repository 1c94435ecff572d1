import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
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
