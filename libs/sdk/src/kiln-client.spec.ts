import assert from 'node:assert/strict';
import { test } from 'node:test';
import { KilnApiError, KilnNetworkError } from './errors.js';
import { KilnClient, parseServerSentEvents } from './kiln-client.js';

function streamOf(chunks: string[]): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  return new ReadableStream({
    start(controller) {
      for (const c of chunks) controller.enqueue(encoder.encode(c));
      controller.close();
    },
  });
}

test('server-sent events are parsed across chunk boundaries; comments and retry lines are skipped', async () => {
  const events = [];
  for await (const e of parseServerSentEvents(
    streamOf([
      'retry: 2000\n\n: keepalive\n\nid: 1\nevent: compi',
      'lation\ndata: {"id":"c","status":"running"',
      '}\n\nevent: end\ndata: {"id":"c","status":"succeeded"}\n\n',
    ]),
  )) {
    events.push(e);
  }
  assert.deepEqual(events, [
    { event: 'compilation', data: { id: 'c', status: 'running' } },
    { event: 'end', data: { id: 'c', status: 'succeeded' } },
  ]);
});

test('server-sent events with CRLF line ends and data split over several lines are parsed too', async () => {
  const events = [];
  for await (const e of parseServerSentEvents(
    streamOf([
      'event: compilation\r\ndata: {"id":"c",\r\ndata:  "status":"queued"}\r\n\r',
      '\nevent: end\r\ndata: {}\r\n\r\n',
    ]),
  )) {
    events.push(e);
  }
  assert.deepEqual(events, [
    { event: 'compilation', data: { id: 'c', status: 'queued' } },
    { event: 'end', data: {} },
  ]);
});

test('API errors carry the server code; transient ones are retried, then surface', async () => {
  let calls = 0;
  const flaky: typeof fetch = async () => {
    calls++;
    if (calls === 1) throw new TypeError('fetch failed');
    if (calls === 2) return new Response('bad gateway', { status: 502 });
    return Response.json([{ id: 'm', name: 'n', description: '', createdAt: '', latestVersion: null }]);
  };
  const client = new KilnClient({ baseUrl: 'http://api/', apiKey: 'k', fetch: flaky, retry: { minDelayMs: 1 } });
  assert.equal((await client.listModels())[0].name, 'n');
  assert.equal(calls, 3);

  const refusing: typeof fetch = async () =>
    Response.json({ error: { code: 'UPLOAD_EXPIRED', message: 'gone', details: { a: 1 } } }, { status: 410 });
  const err = await new KilnClient({ baseUrl: 'http://api', apiKey: 'k', fetch: refusing })
    .getUpload('u')
    .catch((e: unknown) => e);
  assert.ok(err instanceof KilnApiError);
  assert.deepEqual([err.status, err.code, err.message, err.details], [410, 'UPLOAD_EXPIRED', 'gone', { a: 1 }]);

  const down: typeof fetch = async () => {
    throw new TypeError('fetch failed', { cause: new Error('ECONNREFUSED') });
  };
  const net = await new KilnClient({
    baseUrl: 'http://api',
    apiKey: 'k',
    fetch: down,
    retry: { retries: 1, minDelayMs: 1 },
  })
    .health()
    .catch((e: unknown) => e);
  assert.ok(net instanceof KilnNetworkError && /ECONNREFUSED/.test(net.message), String(net));
});
