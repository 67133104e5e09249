import { WORKER_LAST_ERROR_MAX } from '@dimoo/contracts';
import { shortError } from './registry';

describe('shortError', () => {
  it('keeps the code and the first line', () => {
    expect(shortError('invalid-input', '\nimage 0 is not a PNG\n    at decode (image.ts:1)')).toBe('invalid-input: image 0 is not a PNG');
  });

  it('masks object keys, API keys and base64 data, and cuts a long message', () => {
    const key = 'teams/7d2e9a41-3c6b-4e8f-a1d0-2b5c8e9f4a11/jobs/0b6f3c5e-8d1a-4f7b-9c2e-5a4d3b2c1f00/inputs/image.bin';
    expect(shortError('StorageUnavailable', `cannot read ${key}: timeout`)).toBe('StorageUnavailable: cannot read teams/… timeout');
    expect(shortError('E', 'refused dimoo_4f9a2c1e7b3d5a8c0e6f2b4d9a1c3e5f7b9d for team x')).toBe('E: refused dimoo_… for team x');
    expect(shortError('E', `bad image ${'iVBORw0KGgo'.repeat(20)} end`)).toBe('E: bad image … end');
    const long = shortError('E', 'x '.repeat(500));
    expect(long).toHaveLength(WORKER_LAST_ERROR_MAX);
    expect(long.endsWith('…')).toBe(true);
  });
});
