import { randomBytes } from 'node:crypto';
import net from 'node:net';

import { BucketNotFound, ObjectNotFound, StorageUnavailable } from './errors';
import { inputKey, jobOfKey, previewKey, resultKey } from './keys';
import { ObjectStore } from './object-store';
import { type S3TestServer, startS3Server } from './testing';

const TEAM = '3f0c8a9e-0b7c-4d61-9d0e-6f1a2b3c4d5e';
const JOB = '9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d';

describe('ObjectStore (s3rver over HTTP, real minio client)', () => {
  let server: S3TestServer;
  let store: ObjectStore;

  beforeAll(async () => {
    server = await startS3Server();
    store = new ObjectStore(server.config('dimoo-results'));
    await store.ensureBucket();
  });

  afterAll(async () => {
    await server?.dispose();
  });

  describe('ensureBucket / ping', () => {
    it('creates a missing bucket, idempotently and concurrently', async () => {
      const fresh = new ObjectStore(server.config('dimoo-fresh'));
      await expect(fresh.ping()).rejects.toBeInstanceOf(BucketNotFound);
      await fresh.ensureBucket();
      await fresh.ensureBucket();
      await Promise.all([fresh.ensureBucket(), fresh.ensureBucket()]);
      await expect(fresh.ping()).resolves.toBeUndefined();
    });

    it('reports a missing bucket on writes as BucketNotFound', async () => {
      const missing = new ObjectStore(server.config('dimoo-missing'));
      await expect(missing.put('k', Buffer.from('x'), 'text/plain')).rejects.toBeInstanceOf(BucketNotFound);
    });
  });

  describe('objects', () => {
    it('puts, gets, stats and removes an object', async () => {
      const key = resultKey(TEAM, JOB, 'png');
      const bytes = randomBytes(200_000);
      const { etag } = await store.put(key, bytes, 'image/png');
      expect(etag).toMatch(/^[0-9a-f]{32}$/);

      expect((await store.get(key)).equals(bytes)).toBe(true);
      const stat = await store.stat(key);
      expect(stat).toMatchObject({ size: bytes.length, etag, contentType: 'image/png' });
      expect(stat.lastModified).toBeInstanceOf(Date);
      expect(await store.exists(key)).toBe(true);

      await store.remove(key);
      expect(await store.exists(key)).toBe(false);
      await expect(store.get(key)).rejects.toBeInstanceOf(ObjectNotFound);
      await store.remove(key);
    });

    it('takes any Uint8Array, including a view into a larger buffer', async () => {
      const backing = new Uint8Array([9, 9, 1, 2, 3, 9]);
      await store.put('view.bin', backing.subarray(2, 5), 'application/octet-stream');
      expect([...(await store.get('view.bin'))]).toEqual([1, 2, 3]);
      await store.put('empty.bin', new Uint8Array(0), 'application/octet-stream');
      expect((await store.get('empty.bin')).length).toBe(0);
    });

    it('overwrites an object under the same key', async () => {
      await store.put('over.txt', Buffer.from('one'), 'text/plain');
      await store.put('over.txt', Buffer.from('two'), 'text/plain');
      expect((await store.get('over.txt')).toString()).toBe('two');
    });

    it('lists a prefix in key order, a page at a time', async () => {
      const keys = ['a', 'b', 'c', 'd', 'e'].map((n) => `list-test/${n}`);
      for (const k of keys) await store.put(k, Buffer.from(k), 'text/plain');
      expect((await store.list('list-test/')).map((o) => o.key)).toEqual(keys);
      const first = await store.list('list-test/', { limit: 2 });
      expect(first.map((o) => o.key)).toEqual(keys.slice(0, 2));
      expect((await store.list('list-test/', { startAfter: first.at(-1)!.key, limit: 2 })).map((o) => o.key)).toEqual(keys.slice(2, 4));
      expect((await store.list('list-test/', { startAfter: keys[3]!, limit: 2 })).map((o) => o.key)).toEqual(keys.slice(4));
    });

    it('raises ObjectNotFound with the key for missing objects', async () => {
      const key = inputKey(TEAM, JOB, 'mask.png');
      const getError = await store.get(key).catch((e: unknown) => e);
      expect(getError).toBeInstanceOf(ObjectNotFound);
      expect((getError as ObjectNotFound).key).toBe(key);
      await expect(store.stat(key)).rejects.toBeInstanceOf(ObjectNotFound);
    });
  });

  describe('presigned GET', () => {
    it('serves the object to a plain fetch', async () => {
      const key = previewKey(TEAM, JOB, 3);
      await store.put(key, Buffer.from('preview bytes'), 'image/png');
      const url = await store.presignedGet(key, 60);
      expect(url.startsWith(`${server.url}/dimoo-results/`)).toBe(true);
      expect(url).toContain('X-Amz-Expires=60');
      const response = await fetch(url);
      expect(response.status).toBe(200);
      expect(response.headers.get('content-type')).toBe('image/png');
      expect(await response.text()).toBe('preview bytes');
    });

    it('answers 403 once the link has expired', async () => {
      await store.put('short.txt', Buffer.from('soon gone'), 'text/plain');
      const url = await store.presignedGet('short.txt', 1);
      await new Promise((resolve) => setTimeout(resolve, 2_100));
      const response = await fetch(url);
      expect(response.status).toBe(403);
      await response.arrayBuffer();
    });

    it('signs for the public endpoint when one is configured', async () => {
      const publicStore = new ObjectStore({ ...server.config('dimoo-results'), publicEndpoint: { endPoint: 'localhost', port: server.port, useSSL: false } });
      const url = await publicStore.presignedGet('short.txt', 60);
      expect(new URL(url).host).toBe(`localhost:${server.port}`);
    });

    it('refuses expiries S3 would reject', async () => {
      await expect(store.presignedGet('x', 0)).rejects.toBeInstanceOf(RangeError);
      await expect(store.presignedGet('x', 604_801)).rejects.toBeInstanceOf(RangeError);
    });
  });

  describe('unavailable store', () => {
    it('raises StorageUnavailable while the server is down, and works again once it is back', async () => {
      const own = await startS3Server({ buckets: ['dimoo-flaky'] });
      try {
        const flaky = new ObjectStore(own.config('dimoo-flaky'));
        await flaky.put('k.txt', Buffer.from('kept'), 'text/plain');
        await own.stop();

        await expect(flaky.get('k.txt')).rejects.toBeInstanceOf(StorageUnavailable);
        await expect(flaky.put('k2.txt', Buffer.from('x'), 'text/plain')).rejects.toBeInstanceOf(StorageUnavailable);
        await expect(flaky.stat('k.txt')).rejects.toBeInstanceOf(StorageUnavailable);
        await expect(flaky.ping()).rejects.toBeInstanceOf(StorageUnavailable);
        await expect(flaky.ensureBucket()).rejects.toBeInstanceOf(StorageUnavailable);

        const again = await startS3Server({ directory: own.directory, port: own.port });
        try {
          expect((await flaky.get('k.txt')).toString()).toBe('kept');
        } finally {
          await again.stop();
        }
      } finally {
        await own.dispose();
      }
    });

    it('raises StorageUnavailable when the server accepts but never answers', async () => {
      const sockets = new Set<net.Socket>();
      const silent = net.createServer((socket) => {
        sockets.add(socket);
        socket.on('close', () => sockets.delete(socket));
      });
      await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
      const { port } = silent.address() as net.AddressInfo;
      try {
        const hung = new ObjectStore({ ...server.config('dimoo-results'), port, requestTimeoutMs: 300 });
        const started = Date.now();
        await expect(hung.ping()).rejects.toBeInstanceOf(StorageUnavailable);
        expect(Date.now() - started).toBeLessThan(5_000);
      } finally {
        for (const socket of sockets) socket.destroy();
        await new Promise((resolve) => silent.close(resolve));
      }
    });
  });
});

describe('object keys', () => {
  it('lay out a job under its team', () => {
    expect(resultKey(TEAM, JOB, 'png')).toBe(`teams/${TEAM}/jobs/${JOB}/result.png`);
    expect(resultKey(TEAM, JOB, '.webp')).toBe(`teams/${TEAM}/jobs/${JOB}/result.webp`);
    expect(inputKey(TEAM, JOB, 'image.png')).toBe(`teams/${TEAM}/jobs/${JOB}/inputs/image.png`);
    expect(previewKey(TEAM, JOB, 7)).toBe(`teams/${TEAM}/jobs/${JOB}/previews/0007.png`);
    expect(previewKey(TEAM, JOB, 12, 'webp')).toBe(`teams/${TEAM}/jobs/${JOB}/previews/0012.webp`);
    for (const k of [resultKey(TEAM, JOB, 'png'), inputKey(TEAM, JOB, 'mask.bin'), previewKey(TEAM, JOB, 3)]) {
      expect(jobOfKey(k)).toEqual({ teamId: TEAM, jobId: JOB });
    }
    expect(jobOfKey(`teams/${TEAM}/notes.txt`)).toBeNull();
    expect(jobOfKey(`teams/${TEAM}/jobs/${JOB}/`)).toBeNull();
  });

  it('refuse segments that could escape the job prefix', () => {
    expect(() => inputKey(TEAM, JOB, '../other/image.png')).toThrow(TypeError);
    expect(() => inputKey(TEAM, JOB, 'a/b.png')).toThrow(TypeError);
    expect(() => inputKey(TEAM, JOB, '.hidden')).toThrow(TypeError);
    expect(() => inputKey(TEAM, JOB, 'x..png')).toThrow(TypeError);
    expect(() => resultKey('../t', JOB, 'png')).toThrow(TypeError);
    expect(() => resultKey(TEAM, JOB, 'png/x')).toThrow(TypeError);
    expect(() => previewKey(TEAM, JOB, -1)).toThrow(TypeError);
    expect(() => previewKey(TEAM, JOB, 1.5)).toThrow(TypeError);
  });
});
