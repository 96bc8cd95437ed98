import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  formatBytes,
  formatCount,
  formatDate,
  formatDuration,
  formatError,
  formatMs,
  formatRate,
  formatSpeedup,
  plural,
  relativeTime,
  shortHash,
} from './format.js';

describe('format', () => {
  test('bytes in binary units, exact below 1 KiB', () => {
    assert.equal(formatBytes(0), '0 B');
    assert.equal(formatBytes(1023), '1023 B');
    assert.equal(formatBytes(1536), '1.5 KiB');
    assert.equal(formatBytes(358_475), '350 KiB');
    assert.equal(formatBytes(32 * 1024 ** 2), '32 MiB');
    assert.equal(formatBytes(5.5 * 1024 ** 3), '5.5 GiB');
    assert.equal(formatBytes(-1), '—');
    assert.equal(formatBytes(Number.NaN), '—');
  });

  test('counts group small numbers and abbreviate large ones', () => {
    assert.equal(formatCount(85_002), '85,002');
    assert.equal(formatCount(1_234_567), '1.23M');
    assert.equal(formatCount(7_000_000_000), '7B');
    assert.equal(formatCount(250_000), '250k');
  });

  test('times per call and durations', () => {
    assert.equal(formatMs(0.0421), '0.042 ms');
    assert.equal(formatMs(1.25), '1.25 ms');
    assert.equal(formatMs(312.4), '312 ms');
    assert.equal(formatMs(2400), '2.4 s');
    assert.equal(formatDuration(42_900), '42 s');
    assert.equal(formatDuration(185_000), '3 min 05 s');
    assert.equal(formatDuration(3_720_000), '1 h 02 min');
  });

  test('speedups, numeric errors and hashes', () => {
    assert.equal(formatSpeedup(1.6234), '1.62×');
    assert.equal(formatSpeedup(12.34), '12.3×');
    assert.equal(formatSpeedup(0), '—');
    assert.equal(formatError(0), '0');
    assert.equal(formatError(3.1e-6), '3.1e-6');
    assert.equal(formatError(2.5e-7), '2.5e-7');
    assert.equal(formatError(0.012), '0.012');
    assert.equal(shortHash('a'.repeat(64)), 'a'.repeat(12));
    assert.equal(shortHash('abc'), 'abc');
  });

  test('relative times fall back to a UTC date', () => {
    const now = Date.parse('2026-11-26T12:00:00Z');
    assert.equal(relativeTime('2026-11-26T11:59:40Z', now), 'just now');
    assert.equal(relativeTime('2026-11-26T11:56:00Z', now), '4 min ago');
    assert.equal(relativeTime('2026-11-26T09:00:00Z', now), '3 h ago');
    assert.equal(relativeTime('2026-11-25T10:00:00Z', now), 'yesterday');
    assert.equal(relativeTime('2026-09-01T10:00:00Z', now), '2026-09-01 10:00 UTC');
    assert.equal(formatDate('2026-11-26T12:34:56Z'), '2026-11-26 12:34 UTC');
    assert.equal(relativeTime('not a date', now), '—');
  });

  test('rates and plurals', () => {
    assert.equal(formatRate(10 * 1024 ** 2, 1000), '10 MiB/s');
    assert.equal(formatRate(1, 0), '—');
    assert.equal(plural(1, 'target'), '1 target');
    assert.equal(plural(3, 'target'), '3 targets');
  });
});
