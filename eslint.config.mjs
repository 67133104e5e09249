import nx from '@nx/eslint-plugin';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['**/node_modules/**', '**/dist/**', '**/*.js', '**/*.mjs', 'models/**', 'tools/model/**', 'libs/db/src/generated/**'] },
  ...nx.configs['flat/base'],
  ...tseslint.configs.recommendedTypeChecked,
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
      '@nx/enforce-module-boundaries': [
        'error',
        {
          enforceBuildableLibDependency: false,
          allow: [],
          depConstraints: [
            // The engine is pure: no other project, no Nest, no runtime, no I/O.
            {
              sourceTag: 'type:engine',
              onlyDependOnLibsWithTags: ['type:engine'],
              bannedExternalImports: [
                '@nestjs/*',
                'onnxruntime-node',
                'bullmq',
                'ioredis',
                'minio',
                '@prisma/*',
                'fs',
                'node:fs',
                'node:fs/promises',
                'sharp',
                'pngjs',
              ],
            },
            { sourceTag: 'type:contracts', onlyDependOnLibsWithTags: ['type:contracts'], bannedExternalImports: ['@nestjs/*', 'onnxruntime-node'] },
            { sourceTag: 'type:runtime', onlyDependOnLibsWithTags: ['type:engine', 'type:contracts'], bannedExternalImports: ['@nestjs/*'] },
            // Data access (Postgres, object storage): plain classes, usable from apps and workers alike.
            { sourceTag: 'type:data', onlyDependOnLibsWithTags: ['type:contracts', 'type:data'], bannedExternalImports: ['@nestjs/*'] },
            { sourceTag: 'type:app', onlyDependOnLibsWithTags: ['type:engine', 'type:contracts', 'type:runtime', 'type:data'] },
            // Tools (benchmarks) may start the data services; they reach the apps only as processes, over HTTP.
            { sourceTag: 'type:tool', onlyDependOnLibsWithTags: ['type:engine', 'type:contracts', 'type:runtime', 'type:data'] },
          ],
        },
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
