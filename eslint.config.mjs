import nx from '@nx/eslint-plugin';
import prettier from 'eslint-config-prettier';
import tseslint from 'typescript-eslint';

// Libraries a layer must never load: the engine is pure; only the runtime (worker side) loads onnxruntime-node.
const io = ['fs', 'node:fs', 'node:fs/promises', 'sharp', 'pngjs', 'minio', 'bullmq', 'ioredis', '@prisma/*'];
const nest = ['@nestjs/*'];

export default tseslint.config(
  {
    ignores: [
      '**/node_modules/**',
      '**/dist/**',
      '**/*.js',
      '**/*.mjs',
      'models/**',
      'tools/model/**',
      'libs/db/src/generated/**',
      'libs/sdk/src/generated/**',
    ],
  },
  ...nx.configs['flat/base'],
  ...tseslint.configs.recommendedTypeChecked,
  // formatting is Prettier's (npm run format:check): stylistic rules that disagree with it are off; `curly` below is
  // kept on purpose (multi-line), and a body Prettier wraps gets braces
  prettier,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/switch-exhaustiveness-check': ['error', { considerDefaultExhaustiveForUnions: true }],
      '@typescript-eslint/await-thenable': 'error',
      '@typescript-eslint/require-await': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      eqeqeq: ['error', 'always'],
      curly: ['error', 'multi-line'],
      'no-restricted-syntax': [
        'error',
        { selector: "CallExpression[callee.object.name=/^(it|describe|test)$/][callee.property.name='only']", message: 'No committed .only' },
      ],
      // The architecture (docs/architecture.md): who may import whom, by scope (which process) and type (which layer).
      '@nx/enforce-module-boundaries': [
        'error',
        {
          enforceBuildableLibDependency: false,
          allow: [],
          depConstraints: [
            // scopes: the API process never loads the engine or onnxruntime-node; API and worker share only libraries
            { sourceTag: 'scope:api', onlyDependOnLibsWithTags: ['scope:api', 'scope:shared', 'scope:testing'], bannedExternalImports: ['onnxruntime-node'] },
            { sourceTag: 'scope:worker', onlyDependOnLibsWithTags: ['scope:worker', 'scope:shared', 'scope:engine', 'scope:testing'] },
            { sourceTag: 'scope:cli', onlyDependOnLibsWithTags: ['scope:shared', 'scope:engine'] },
            // the notifier delivers webhooks (its own process, so egress can be limited to it): the record and the queue only
            { sourceTag: 'scope:notifier', onlyDependOnLibsWithTags: ['scope:shared', 'scope:testing'], bannedExternalImports: ['onnxruntime-node'] },
            { sourceTag: 'scope:engine', onlyDependOnLibsWithTags: ['scope:engine', 'scope:shared'] },
            { sourceTag: 'scope:shared', onlyDependOnLibsWithTags: ['scope:shared'], bannedExternalImports: ['onnxruntime-node'] },
            { sourceTag: 'scope:testing', onlyDependOnLibsWithTags: ['scope:shared', 'scope:testing'], bannedExternalImports: ['onnxruntime-node'] },
            // the admin dashboard runs in a browser: the SDK and the contracts only (both browser-safe), over HTTP
            {
              sourceTag: 'scope:dashboard',
              onlyDependOnLibsWithTags: ['type:sdk', 'type:contracts'],
              bannedExternalImports: [...nest, 'onnxruntime-node', ...io],
            },
            // tools (benchmarks, end-to-end tests) reach the apps only as processes, over HTTP
            { sourceTag: 'scope:tools', onlyDependOnLibsWithTags: ['scope:shared', 'scope:engine', 'scope:testing', 'scope:tools'] },
            // types: the layers
            { sourceTag: 'type:engine', onlyDependOnLibsWithTags: ['type:engine'], bannedExternalImports: [...nest, 'onnxruntime-node', ...io] },
            {
              sourceTag: 'type:contracts',
              onlyDependOnLibsWithTags: ['type:contracts'],
              bannedExternalImports: [...nest, 'onnxruntime-node', 'sharp', 'minio', 'bullmq', '@prisma/*'],
            },
            { sourceTag: 'type:config', onlyDependOnLibsWithTags: ['type:config'], bannedExternalImports: nest },
            { sourceTag: 'type:model', onlyDependOnLibsWithTags: ['type:contracts', 'type:model'], bannedExternalImports: nest },
            { sourceTag: 'type:runtime', onlyDependOnLibsWithTags: ['type:engine', 'type:contracts', 'type:model'], bannedExternalImports: nest },
            { sourceTag: 'type:data', onlyDependOnLibsWithTags: ['type:contracts', 'type:data'], bannedExternalImports: nest },
            { sourceTag: 'type:testing', onlyDependOnLibsWithTags: ['type:contracts', 'type:config', 'type:data', 'type:testing'] },
            // the SDK stands alone (its types are generated from docs/openapi.json): HTTP through fetch, no library of ours
            {
              sourceTag: 'type:sdk',
              onlyDependOnLibsWithTags: ['type:sdk'],
              bannedExternalImports: [...nest, 'onnxruntime-node', 'sharp', 'pngjs', 'minio', 'bullmq', 'ioredis', '@prisma/*'],
            },
          ],
        },
      ],
    },
  },
  {
    // the engine and the contracts are pure: no Node built-in (Nx's bannedExternalImports does not cover them); specs
    // may read fixtures
    files: ['libs/diffusion/**/*.ts', 'libs/contracts/**/*.ts'],
    ignores: ['**/*.spec.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [{ regex: '^node:|^(fs|path|os|net|http|https|child_process|worker_threads)$', message: 'the engine and the contracts are pure: no I/O' }],
        },
      ],
    },
  },
  {
    // production code of the apps never imports test harnesses
    files: ['apps/**/*.ts', 'apps/**/*.tsx'],
    ignores: ['**/*.spec.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        { patterns: [{ group: ['@dimoo/platform', '@dimoo/*/testing'], message: 'test harnesses are for specs, tools and the demo' }] },
      ],
    },
  },
  {
    // the dashboard runs in a browser: no Node built-in module or global (its tsconfig has Node's types for the SDK's sake)
    files: ['apps/dashboard/**/*.ts', 'apps/dashboard/**/*.tsx'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            { group: ['@dimoo/platform', '@dimoo/*/testing'], message: 'test harnesses are for specs, tools and the demo' },
            {
              regex: '^node:|^(fs|path|os|net|http|https|child_process|worker_threads|crypto|buffer)$',
              message: 'the dashboard runs in a browser: no Node module',
            },
          ],
        },
      ],
      'no-restricted-globals': [
        'error',
        ...['Buffer', 'process', 'require', '__dirname', '__filename', 'global'].map((name) => ({ name, message: 'the dashboard runs in a browser' })),
      ],
    },
  },
  {
    files: ['**/*.spec.ts', '**/test/**/*.ts'],
    rules: {
      '@typescript-eslint/no-non-null-assertion': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
    },
  },
);
