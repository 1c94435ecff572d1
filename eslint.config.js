import js from '@eslint/js';
import tseslint from 'typescript-eslint';

// Thread-side code (client/, mapper/) and the protocol code both sides load (wire/) must never
// load main-only modules; main-side and shared code must never load thread-side modules.
const mainOnly = ['**/broker/**', '**/drivers/**', '**/pool/**', '**/wiring/**', '**/config/load-config*', '**/config/schema*'];
const threadOnly = ['**/client/**', '**/mapper/**', '**/worker.js'];

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**', '**/*.mjs', '**/*.cjs', '.threadbroker/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-explicit-any': 'error',
    },
  },
  {
    files: ['src/client/**/*.ts', 'src/mapper/**/*.ts', 'src/worker.ts', 'src/wire/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: [{ group: mainOnly, message: 'thread-side code must not import main-only modules' }] }] },
  },
  {
    files: ['src/drivers/**/*.ts', 'src/pool/**/*.ts', 'src/transport/**/*.ts', 'src/slots/**/*.ts', 'src/wire/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: [{ group: threadOnly, message: 'main-side and shared code must not import thread-side modules' }] }] },
  },
);
