import assert from 'node:assert/strict';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import { httpPutPart } from './part-transport.js';

const MiB = 1024 * 1024;

/** A body of `total` bytes made on demand, counting how many were handed out so far. */
function countingBody(total: number): { body: Readable; produced: () => number } {
  let produced = 0;
  const chunk = Buffer.alloc(256 * 1024, 7);
  const body = new Readable({
    highWaterMark: MiB,
    read() {
      if (produced >= total) {
        this.push(null);
        return;
      }
      const n = Math.min(chunk.length, total - produced);
      produced += n;
      this.push(n === chunk.length ? chunk : chunk.subarray(0, n));
    },
  });
  return { body, produced: () => produced };
}

// The build worker uploads its parts (a 2 GiB weights part for a 2 GiB model) with this transport, as the SDK does
// its upload parts: the body must be read only as fast as the server takes it, and what was sent must not pile up
// in memory. (fetch with a Readable.toWeb body kept every chunk it sent as an ArrayBuffer until some later GC:
// +2 GiB of worker RSS for a 2 GiB part; bench/README.md, "A 2 GiB model end to end".)
test('httpPutPart streams a body to a slow server without holding what it sent', async () => {
  const total = 128 * MiB;
  const { body, produced } = countingBody(total);
  let received = 0;
  let mostAhead = 0;
  const buffersBefore = process.memoryUsage().arrayBuffers;
  let buffersPeak = buffersBefore;
  const server = createServer((req: IncomingMessage, res) => {
    req.on('data', (c: Buffer) => {
      received += c.length;
      mostAhead = Math.max(mostAhead, produced() - received);
      buffersPeak = Math.max(buffersPeak, process.memoryUsage().arrayBuffers);
      // A slow server: a pause after every chunk it reads.
      req.pause();
      void sleep(1).then(() => req.resume());
    });
    req.on('end', () => res.end('stored'));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const { port } = server.address() as AddressInfo;
    const res = await httpPutPart({
      url: `http://127.0.0.1:${port}/part`,
      headers: { 'content-length': String(total), 'content-type': 'application/octet-stream' },
      body,
      signal: new AbortController().signal,
    });
    assert.equal(res.status, 200);
    assert.equal(res.text, 'stored');
    assert.equal(received, total);
    // Socket buffers and the stream's own 1 MiB, nothing like the whole body.
    assert.ok(mostAhead < 16 * MiB, `read ${(mostAhead / MiB).toFixed(1)} MiB ahead of the server`);
    // fetch + Readable.toWeb: ~+130 MiB here (all of it); node:http: a few MiB.
    const held = (buffersPeak - buffersBefore) / MiB;
    assert.ok(held < 48, `${held.toFixed(0)} MiB of ArrayBuffers held while sending ${total / MiB} MiB`);
  } finally {
    server.close();
  }
});
