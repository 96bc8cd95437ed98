import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { OutputCapture } from './output-capture.js';

describe('OutputCapture', () => {
  it('splits lines across chunks, strips CR, flushes the last partial line at the end', () => {
    const lines: string[] = [];
    const capture = new OutputCapture((l) => lines.push(l), 1024);
    capture.write(Buffer.from('first li'));
    capture.write(Buffer.from('ne\r\nsecond\n\nthi'));
    capture.write(Buffer.from('rd'));
    assert.deepEqual(lines, ['first line', 'second', '']);
    capture.end();
    assert.deepEqual(lines, ['first line', 'second', '', 'third']);
    assert.equal(capture.text(), 'first line\r\nsecond\n\nthird');
  });

  it('does not break UTF-8 characters split between chunks', () => {
    const lines: string[] = [];
    const capture = new OutputCapture((l) => lines.push(l), 1024);
    const bytes = Buffer.from('grüße → ok\n');
    for (const byte of bytes) capture.write(Buffer.from([byte]));
    assert.deepEqual(lines, ['grüße → ok']);
  });

  it('keeps only the tail, and delivers an endless line in pieces', () => {
    const lines: string[] = [];
    const capture = new OutputCapture((l) => lines.push(l), 100, 50);
    capture.write(Buffer.from('x'.repeat(120)));
    assert.deepEqual(lines, ['x'.repeat(50), 'x'.repeat(50)]);
    for (let i = 0; i < 1000; i++) capture.write(Buffer.from(`line ${i}\n`));
    capture.end();
    assert.equal(capture.text().length, 100);
    assert.ok(capture.text().endsWith('line 999\n'));
    assert.equal(lines[lines.length - 1], 'line 999');
  });

  it('survives a throwing callback', () => {
    const capture = new OutputCapture(() => {
      throw new Error('consumer bug');
    }, 100);
    capture.write(Buffer.from('a\nb\n'));
    capture.end();
    assert.equal(capture.text(), 'a\nb\n');
  });
});
