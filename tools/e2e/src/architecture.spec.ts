/**
 * The architecture is enforced by lint (eslint.config.mjs, docs/architecture.md): fixtures placed in a project are
 * linted with the workspace's own configuration, and an import across a forbidden boundary must fail. ESLint loads its
 * ESM config in a child process (Jest's module sandbox cannot import it); only the import rules run, since the fixtures
 * are not part of any tsconfig for the type-aware rules.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { WORKSPACE_ROOT } from '@dimoo/platform';

const run = promisify(execFile);

const LINT = `
import { ESLint } from 'eslint';
const cases = JSON.parse(process.argv[1]);
const eslint = new ESLint({
  overrideConfig: { languageOptions: { parserOptions: { projectService: false, project: null } } },
  ruleFilter: ({ ruleId }) => ruleId === '@nx/enforce-module-boundaries' || ruleId === 'no-restricted-imports',
});
const out = [];
for (const [file, code] of cases) {
  const [r] = await eslint.lintText(code, { filePath: file });
  out.push(r.messages.map((m) => m.ruleId + ': ' + m.message));
}
console.log(JSON.stringify(out));
`;

/** Lint messages of each [file, code] fixture (the files need not exist). */
async function lint(cases: [string, string][]): Promise<string[][]> {
  const { stdout } = await run(process.execPath, ['--input-type=module', '-e', LINT, JSON.stringify(cases)], {
    cwd: WORKSPACE_ROOT,
    env: { ...process.env, NX_DAEMON: 'false' },
  });
  return JSON.parse(stdout) as string[][];
}

const importing = (what: string, from: string) => `import { ${what} } from '${from}';\nexport const x = ${what};\n`;

describe('lint enforces the architecture', () => {
  it('fails an import the layout forbids, and passes the ones it allows', async () => {
    const [apiRuntime, apiOnnx, apiWorker, apiHarness, engineModel, engineFs, sharedRuntime, apiShared, workerRuntime, specHarness] = await lint([
      ['apps/api/src/lint-fixture.ts', importing('loadModel', '@dimoo/runtime')],
      ['apps/api/src/lint-fixture.ts', "import * as ort from 'onnxruntime-node';\nexport const x = ort;\n"],
      ['apps/api/src/lint-fixture.ts', importing('GenerationProcessor', '../../worker/src/generation.processor')],
      ['apps/api/src/lint-fixture.ts', importing('startPlatform', '@dimoo/platform')],
      ['libs/diffusion/src/lint-fixture.ts', importing('loadManifest', '@dimoo/model')],
      ['libs/diffusion/src/lint-fixture.ts', importing('readFileSync', 'node:fs')],
      ['libs/storage/src/lint-fixture.ts', importing('loadModel', '@dimoo/runtime')],
      ['apps/api/src/lint-fixture.ts', importing('resolveJob', '@dimoo/contracts')],
      ['apps/worker/src/lint-fixture.ts', importing('EngineHost', '@dimoo/runtime')],
      ['apps/api/src/lint-fixture.spec.ts', importing('startPlatform', '@dimoo/platform')],
    ]);
    expect(apiRuntime).toEqual([expect.stringMatching(/enforce-module-boundaries: A project tagged with "scope:api" can only depend on/)]);
    expect(apiOnnx).toEqual([expect.stringMatching(/"scope:api" is not allowed to import "onnxruntime-node"/)]);
    expect(apiWorker).toEqual([expect.stringMatching(/enforce-module-boundaries/)]);
    expect(apiHarness).toEqual([expect.stringMatching(/no-restricted-imports: .*test harnesses are for specs/)]);
    expect(engineModel).toEqual([expect.stringMatching(/"scope:engine" can only depend on|"type:engine" can only depend on/)]);
    expect(engineFs).toEqual([expect.stringMatching(/no-restricted-imports: .*the engine and the contracts are pure/)]);
    expect(sharedRuntime).toEqual([expect.stringMatching(/"scope:shared" can only depend on/)]);
    expect([apiShared, workerRuntime, specHarness]).toEqual([[], [], []]);
  });

  it('keeps the SDK standalone (generated from the OpenAPI document, no library of ours) and lets the CLI and tools use it', async () => {
    const [sdkContracts, sdkSharp, cliSdk, toolsSdk] = await lint([
      ['libs/sdk/src/lint-fixture.ts', importing('JOB_TASKS', '@dimoo/contracts')],
      ['libs/sdk/src/lint-fixture.ts', "import sharp from 'sharp';\nexport const x = sharp;\n"],
      ['apps/cli/src/lint-fixture.ts', importing('DimooClient', '@dimoo/sdk')],
      ['tools/e2e/src/lint-fixture.ts', importing('DimooClient', '@dimoo/sdk')],
    ]);
    expect(sdkContracts).toEqual([expect.stringMatching(/"type:sdk" can only depend on libs tagged with "type:sdk"/)]);
    expect(sdkSharp).toEqual([expect.stringMatching(/"type:sdk" is not allowed to import "sharp"/)]);
    expect([cliSdk, toolsSdk]).toEqual([[], []]);
  });

  it('keeps the dashboard a browser app: the SDK and the contracts only, no library with I/O, no Node module', async () => {
    const [dashboardDb, dashboardDbTsx, dashboardFs, dashboardSdk, dashboardContracts] = await lint([
      ['apps/dashboard/src/lint-fixture.ts', importing('JobRepository', '@dimoo/db')],
      ['apps/dashboard/src/lint-fixture.tsx', `import { JobRepository } from '@dimoo/db';\nexport const X = () => <p>{String(JobRepository)}</p>;\n`],
      ['apps/dashboard/src/lint-fixture.ts', importing('readFileSync', 'node:fs')],
      ['apps/dashboard/src/lint-fixture.tsx', `import { DimooClient } from '@dimoo/sdk';\nexport const X = () => <p>{String(DimooClient)}</p>;\n`],
      ['apps/dashboard/src/lint-fixture.ts', importing('JOB_TASKS', '@dimoo/contracts')],
    ]);
    const onlySdkAndContracts = /"scope:dashboard" can only depend on libs tagged with "type:sdk", "type:contracts"/;
    expect(dashboardDb).toEqual([expect.stringMatching(onlySdkAndContracts)]);
    expect(dashboardDbTsx).toEqual([expect.stringMatching(onlySdkAndContracts)]);
    expect(dashboardFs).toEqual(expect.arrayContaining([expect.stringMatching(/no-restricted-imports: .*the dashboard runs in a browser/)]));
    expect([dashboardSdk, dashboardContracts]).toEqual([[], []]);
  });
});
