import { ApiEnvSchema, manifestFile } from './config';

const env = { DATABASE_URL: 'postgres://db.invalid/dimoo', S3_ACCESS_KEY: 'a', S3_SECRET_KEY: 'b', ADMIN_API_KEY: 'an-admin-key-of-24-chars' };

describe("the API's model manifest setting", () => {
  it('MODEL_MANIFEST names the file; without it, MODEL_DIR/manifest.json; with neither, the boot fails naming MODEL_MANIFEST', () => {
    expect(manifestFile(ApiEnvSchema.parse({ ...env, MODEL_MANIFEST: '/etc/dimoo/model/manifest.json', MODEL_DIR: '/m' }))).toBe(
      '/etc/dimoo/model/manifest.json',
    );
    expect(manifestFile(ApiEnvSchema.parse({ ...env, MODEL_DIR: '/app/models/tiny' }))).toBe('/app/models/tiny/manifest.json');
    expect(ApiEnvSchema.safeParse(env).error?.issues.map((i) => i.path.join('.'))).toEqual(['MODEL_MANIFEST']);
  });
});
