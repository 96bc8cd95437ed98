// @ts-check
import js from '@eslint/js';
import reactHooks from 'eslint-plugin-react-hooks';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['**/node_modules/**', '**/dist/**', '.kiln/**', 'apps/web/dist/**', 'python/**', 'coverage/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      // node:test's describe/test return promises the runner tracks itself.
      '@typescript-eslint/no-floating-promises': [
        'error',
        {
          allowForKnownSafeCalls: [
            { from: 'package', package: 'node:test', name: ['describe', 'test', 'it', 'suite'] },
          ],
        },
      ],
      '@typescript-eslint/switch-exhaustiveness-check': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-extraneous-class': 'off',
      '@typescript-eslint/require-await': 'off',
      '@typescript-eslint/unbound-method': 'off',
    },
  },
  {
    // Workflow code runs in Temporal's deterministic sandbox: no Node built-ins, no I/O libraries.
    files: ['libs/workflows/src/**/*.ts'],
    ignores: ['**/*.spec.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['node:*', 'fs', 'path', 'crypto', 'child_process', 'http', 'https', 'os'],
              message: 'Workflows must be deterministic: no Node built-ins.',
            },
            {
              group: ['@nestjs/*', 'typeorm', 'pg', '@aws-sdk/*', '@kiln/database', '@kiln/storage'],
              message: 'Workflows must not do I/O: call an activity.',
            },
          ],
        },
      ],
    },
  },
  {
    // The dashboard (apps/web): React in the browser. The classic hook rules (the React Compiler's
    // stricter ones are not used: the dashboard does not run the compiler), and no Node built-ins.
    files: ['apps/web/src/**/*.{ts,tsx}'],
    ignores: ['**/*.spec.ts'],
    plugins: { 'react-hooks': reactHooks },
    rules: {
      'react-hooks/rules-of-hooks': 'error',
      'react-hooks/exhaustive-deps': 'error',
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            { group: ['node:*'], message: 'Browser code: no Node built-ins.' },
            {
              // @kiln/sdk/types: the API's response shapes, types only (the SDK's client code is Node code).
              group: [
                '@kiln/*',
                '!@kiln/contracts',
                '!@kiln/matching',
                '!@kiln/targets',
                '!@kiln/sdk',
                '!@kiln/sdk/types',
              ],
              message: 'Only the pure libs are browser-safe.',
            },
          ],
          paths: [
            { name: '@kiln/targets', message: 'Use the browser-safe subpath @kiln/targets/x86-levels.' },
            { name: '@kiln/sdk', message: 'The SDK client is Node code: import its types from @kiln/sdk/types.' },
          ],
        },
      ],
      'no-restricted-globals': [
        'error',
        { name: 'process', message: 'Browser code: no process.' },
        { name: 'Buffer', message: 'Browser code: no Buffer.' },
      ],
    },
  },
  {
    files: ['**/*.js', '**/*.mjs'],
    ...tseslint.configs.disableTypeChecked,
  },
);
