import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { ModelVersion, PartUrls, StoredPart, UploadState } from '../types.js';
import {
  KilnAbortError,
  KilnApiError,
  KilnNetworkError,
  KilnStorageError,
  KilnStorageUnreachableError,
  multipartUpload,
  partRanges,
  type MultipartUploadOptions,
  type PartSource,
  type ResumeSlot,
  type SendPart,
  type UploadApi,
} from './index.js';

// The rules of the upload flow, against an in-memory Kiln API and S3 (the e2e specs run it against the real ones).

const NO_WAIT = { retries: 3, minDelayMs: 0, maxDelayMs: 0, factor: 2 };
const CONTENT = 'abcdefghijklmnopqrstuvwxy'; // 25 bytes: parts of 10, 10 and 5

/** A source whose "sha256" of a part is its text, so a changed part has another checksum. */
function textSource(content = CONTENT): PartSource {
  return {
    size: content.length,
    filename: 'model.pt2',
    async *hashParts(ranges) {
      for (const r of ranges) {
        await Promise.resolve();
        yield { ...r, sha256: content.slice(r.offset, r.offset + r.size) };
      }
      return `whole:${content}`;
    },
  };
}

/** The Kiln API's upload routes and S3's parts, in memory. */
class FakeUploads implements UploadApi {
  state: UploadState | null = null;
  /** What S3 holds: part number → the checksum its URL was signed with. */
  readonly s3 = new Map<number, StoredPart>();
  readonly calls: string[] = [];
  urlRequests = 0;
  completions: { sha256?: string }[] = [];
  /** Answer the first completion with UPLOAD_INCOMPLETE after dropping these parts. */
  loseOnComplete: number[] = [];
  /** URLs that expire at once (to test asking again). */
  expiredUrlsFor = new Set<number>();

  constructor(private readonly partSize = 10) {}

  createUpload: UploadApi['createUpload'] = (modelId, body) => {
    this.calls.push('create');
    const partCount = Math.max(1, Math.ceil(body.sizeBytes / this.partSize));
    this.state = {
      uploadId: 'up-1',
      modelId,
      versionId: 'v-1',
      filename: body.filename,
      sizeBytes: body.sizeBytes,
      partSize: this.partSize,
      partCount,
      checksumAlgorithm: 'sha256',
      status: 'uploading',
      expiresAt: new Date(Date.now() + 86_400_000).toISOString(),
      createdAt: new Date().toISOString(),
      error: null,
      parts: [],
      uploadedBytes: 0,
      version: null,
    };
    return Promise.resolve({ upload: this.state, created: true });
  };

  getUpload: UploadApi['getUpload'] = (uploadId) => {
    this.calls.push('get');
    if (!this.state || this.state.uploadId !== uploadId) {
      return Promise.reject(new KilnApiError(404, 'NOT_FOUND', 'no such upload'));
    }
    return Promise.resolve({ ...this.state, parts: [...this.s3.values()] });
  };

  requestPartUrls: UploadApi['requestPartUrls'] = (uploadId, parts) => {
    this.urlRequests++;
    const state = this.state!;
    const answer: PartUrls = {
      uploadId,
      parts: parts.map((p) => ({
        partNumber: p.partNumber,
        offset: (p.partNumber - 1) * state.partSize,
        size: Math.min(state.partSize, state.sizeBytes - (p.partNumber - 1) * state.partSize),
        url: `s3://bucket/${p.partNumber}?sha256=${p.sha256}&n=${this.urlRequests}`,
        headers: {},
        expiresAt: new Date(Date.now() + 3_600_000).toISOString(),
      })),
    };
    return Promise.resolve(answer);
  };

  completeUpload: UploadApi['completeUpload'] = (_uploadId, body) => {
    this.calls.push('complete');
    this.completions.push(body);
    if (this.loseOnComplete.length > 0) {
      for (const n of this.loseOnComplete) this.s3.delete(n);
      this.loseOnComplete = [];
      return Promise.reject(new KilnApiError(409, 'UPLOAD_INCOMPLETE', 'parts are missing'));
    }
    const version = { id: 'v-1', modelId: this.state!.modelId, number: 1 } as ModelVersion;
    this.state = { ...this.state!, status: 'completed', version };
    return Promise.resolve(version);
  };

  abortUpload: UploadApi['abortUpload'] = () => {
    this.calls.push('abort');
    this.state = { ...this.state!, status: 'aborted' };
    return Promise.resolve(undefined);
  };

  /** S3 taking a PUT: the bytes must match the checksum in the URL (what S3 verifies), and the URL be fresh. */
  put(url: string, part: { partNumber: number; size: number; sha256: string }): { status: number; text: string } {
    const signed = new URL(url).searchParams.get('sha256');
    const first = new URL(url).searchParams.get('n') === '1';
    if (this.expiredUrlsFor.has(part.partNumber) && first) {
      return { status: 403, text: '<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>' };
    }
    if (signed !== part.sha256) return { status: 400, text: '<Error><Code>BadDigest</Code></Error>' };
    this.s3.set(part.partNumber, { partNumber: part.partNumber, size: part.size, etag: 'e', sha256: part.sha256 });
    return { status: 200, text: '' };
  }
}

/** A part transport over FakeUploads; `fail(partNumber, attempt)` may answer or throw instead. */
function sender(
  fake: FakeUploads,
  fail: (partNumber: number, attempt: number) => { status: number; text: string } | Error | undefined = () => undefined,
): SendPart & { sent: number[] } {
  const attempts = new Map<number, number>();
  const sent: number[] = [];
  const send: SendPart = async ({ url, part, onBytes, signal }) => {
    await Promise.resolve();
    signal.throwIfAborted();
    const attempt = (attempts.get(part.partNumber) ?? 0) + 1;
    attempts.set(part.partNumber, attempt);
    const failure = fail(part.partNumber, attempt);
    if (failure instanceof Error) throw failure;
    if (failure) return failure;
    onBytes(part.size);
    sent.push(part.partNumber);
    return fake.put(url, part);
  };
  return Object.assign(send, { sent });
}

function memorySlot(initial: string | null = null): ResumeSlot & { value: string | null } {
  const slot = {
    value: initial,
    load: () => Promise.resolve(slot.value),
    save: (id: string) => {
      slot.value = id;
      return Promise.resolve();
    },
    remove: () => {
      slot.value = null;
      return Promise.resolve();
    },
  };
  return slot;
}

const base = (extra: Partial<MultipartUploadOptions> = {}): MultipartUploadOptions => ({
  modelId: 'm-1',
  retryPolicy: NO_WAIT,
  ...extra,
});

describe('upload core', () => {
  test('part plan: parts tile the file, the last is the remainder; a plan that does not tile it is refused', () => {
    assert.deepEqual(
      partRanges(25, 10, 3).map((p) => [p.partNumber, p.offset, p.size]),
      [
        [1, 0, 10],
        [2, 10, 10],
        [3, 20, 5],
      ],
    );
    assert.deepEqual(partRanges(358_475, 32 * 2 ** 20, 1), [{ partNumber: 1, offset: 0, size: 358_475 }]);
    assert.throws(() => partRanges(100, 10, 11), /do not tile/);
    assert.throws(() => partRanges(-1, 10, 1), /bad file size/);
    assert.throws(() => partRanges(100, 0, 1), /bad part size/);
  });

  test('sends every part, completes with the whole sha256, and clears the resume slot', async () => {
    const fake = new FakeUploads();
    const send = sender(fake);
    const slot = memorySlot();
    const events: string[] = [];
    const result = await multipartUpload(
      { api: fake, source: textSource(), sendPart: send, resume: slot },
      base({ onProgress: (e) => events.push(e.type) }),
    );
    assert.equal(result.version.id, 'v-1');
    assert.deepEqual([result.partsSent, result.partsReused, result.resumed, result.reused], [3, 0, false, false]);
    assert.deepEqual([...send.sent].sort(), [1, 2, 3]);
    assert.deepEqual(fake.completions, [{ sha256: `whole:${CONTENT}` }]);
    assert.equal(slot.value, null);
    assert.equal(events.at(-1), 'uploaded');
    assert.ok(events.includes('upload-completing'));
  });

  test('resuming keeps the stored parts whose size and sha256 match, and sends the others again', async () => {
    const fake = new FakeUploads();
    await fake.createUpload('m-1', { filename: 'model.pt2', sizeBytes: CONTENT.length }, {});
    fake.s3.set(1, { partNumber: 1, size: 10, etag: 'e', sha256: 'abcdefghij' }); // same bytes: kept
    fake.s3.set(2, { partNumber: 2, size: 10, etag: 'e', sha256: 'changed!!!' }); // other bytes: sent again
    fake.s3.set(3, { partNumber: 3, size: 5, etag: 'e' }); // no checksum to compare: sent again
    fake.calls.length = 0;
    const send = sender(fake);
    const slot = memorySlot('up-1');
    const result = await multipartUpload({ api: fake, source: textSource(), sendPart: send, resume: slot }, base());
    assert.equal(result.resumed, true);
    assert.deepEqual([result.partsSent, result.partsReused], [2, 1]);
    assert.deepEqual([...send.sent].sort(), [2, 3]);
    assert.deepEqual(fake.calls.slice(0, 1), ['get']); // found through the slot, not created again
  });

  test('a slot naming an upload the API no longer has starts a new one', async () => {
    const fake = new FakeUploads();
    const result = await multipartUpload(
      { api: fake, source: textSource(), sendPart: sender(fake), resume: memorySlot('gone') },
      base(),
    );
    assert.equal(result.resumed, false);
    assert.deepEqual(fake.calls.slice(0, 2), ['get', 'create']);
  });

  test('transient failures are retried (S3 503, no answer); a refusal is not', async () => {
    const fake = new FakeUploads();
    const retries: string[] = [];
    const send = sender(fake, (n, attempt) => {
      if (n === 2 && attempt === 1) return { status: 503, text: '<Error><Code>SlowDown</Code></Error>' };
      if (n === 3 && attempt === 1) return new KilnNetworkError('ECONNRESET');
      return undefined;
    });
    const result = await multipartUpload(
      { api: fake, source: textSource(), sendPart: send },
      base({ onRetry: (what) => retries.push(what) }),
    );
    assert.equal(result.partsSent, 3);
    assert.deepEqual(retries.sort(), ['PUT part 2', 'PUT part 3']);

    const refused = new FakeUploads();
    const badDigest = sender(refused, (n) =>
      n === 1 ? { status: 400, text: '<Error><Code>BadDigest</Code></Error>' } : undefined,
    );
    await assert.rejects(
      multipartUpload({ api: refused, source: textSource(), sendPart: badDigest }, base()),
      (err: unknown) => err instanceof KilnStorageError && err.s3Code === 'BadDigest' && /sha256/.test(err.message),
    );
    assert.ok(!refused.calls.includes('complete'));
  });

  test('retries stop after the policy: the last failure reaches the caller', async () => {
    const fake = new FakeUploads();
    const send = sender(fake, (n) => (n === 1 ? { status: 502, text: 'bad gateway' } : undefined));
    await assert.rejects(
      multipartUpload({ api: fake, source: textSource(), sendPart: send }, base()),
      (err: unknown) => err instanceof KilnStorageError && err.status === 502,
    );
  });

  test('an expired URL is asked for again and the part re-sent', async () => {
    const fake = new FakeUploads();
    fake.expiredUrlsFor.add(2);
    const result = await multipartUpload({ api: fake, source: textSource(), sendPart: sender(fake) }, base());
    assert.equal(result.partsSent, 3);
    assert.ok(fake.urlRequests >= 2);
  });

  test('parts S3 lost by completion time are sent once more', async () => {
    const fake = new FakeUploads();
    fake.loseOnComplete = [2];
    const send = sender(fake);
    const result = await multipartUpload({ api: fake, source: textSource(), sendPart: send }, base());
    assert.equal(result.version.id, 'v-1');
    assert.deepEqual([...send.sent].sort(), [1, 2, 2, 3]);
  });

  test('aborting cancels the upload on the server and forgets the resume slot', async () => {
    const fake = new FakeUploads();
    const controller = new AbortController();
    const slot = memorySlot();
    const send = sender(fake, (n) => {
      if (n === 2) controller.abort();
      return undefined;
    });
    await assert.rejects(
      multipartUpload(
        { api: fake, source: textSource(), sendPart: send, resume: slot },
        base({ signal: controller.signal }),
      ),
      KilnAbortError,
    );
    assert.ok(fake.calls.includes('abort'));
    assert.ok(!fake.calls.includes('complete'));
    assert.equal(slot.value, null);
  });

  test("storage with no answer before any part is stored: 'give-up' aborts at once, 'retry' retries", async () => {
    const fake = new FakeUploads();
    const unreachable = sender(fake, () => new KilnNetworkError('No answer from http://s3.internal'));
    await assert.rejects(
      multipartUpload(
        { api: fake, source: textSource(), sendPart: unreachable },
        base({ unreachableStorage: 'give-up', concurrency: 1 }),
      ),
      KilnStorageUnreachableError,
    );
    assert.ok(fake.calls.includes('abort'));
    assert.equal(unreachable.sent.length, 0);

    const flaky = new FakeUploads();
    const once = sender(flaky, (_n, attempt) => (attempt === 1 ? new KilnNetworkError('ECONNRESET') : undefined));
    const result = await multipartUpload({ api: flaky, source: textSource(), sendPart: once }, base());
    assert.equal(result.partsSent, 3);
  });

  test('an upload that completed before (same idempotency key) is reused without sending', async () => {
    const fake = new FakeUploads();
    await fake.createUpload('m-1', { filename: 'model.pt2', sizeBytes: CONTENT.length }, {});
    await fake.completeUpload('up-1', {}, {});
    const send = sender(fake);
    const result = await multipartUpload(
      { api: fake, source: textSource(), sendPart: send, resume: memorySlot('up-1') },
      base(),
    );
    assert.deepEqual([result.reused, result.partsSent, send.sent.length], [true, 0, 0]);
  });
});

test('the upload core imports no node: module (the dashboard bundles it for the browser)', () => {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const seen = new Set<string>();
  const visit = (file: string): void => {
    if (seen.has(file)) return;
    seen.add(file);
    const text = readFileSync(file, 'utf8');
    for (const [, what, spec] of text.matchAll(/^(?:import|export)(\s+type)?[^'"]*from\s+'([^']+)'/gm)) {
      if (what) continue; // type-only: erased
      assert.ok(!spec.startsWith('node:'), `${path.relative(here, file)} imports ${spec}`);
      if (spec.startsWith('.')) visit(path.resolve(path.dirname(file), spec.replace(/\.js$/, '.ts')));
    }
  };
  visit(path.join(here, 'index.ts'));
  assert.ok(seen.size >= 5, `followed ${seen.size} files`);
});
