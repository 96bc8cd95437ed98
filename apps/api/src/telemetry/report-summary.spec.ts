import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { NOT_THE_ARTIFACTS_FAULT, summarizeReport } from './report-summary.js';
import { monthOf, monthRange, uuid7Millis, uuidLowerBound } from '@kiln/core';

describe('what a device report adds to the rollups', () => {
  it('names exactly the device codes that error-codes.json marks as not the artifact’s fault', () => {
    const shared = JSON.parse(
      readFileSync(new URL('../../../../libs/contracts/src/error-codes.json', import.meta.url), 'utf8'),
    ) as { device: { code: string; artifactsFault: boolean }[] };
    assert.deepEqual(
      [...NOT_THE_ARTIFACTS_FAULT].sort(),
      shared.device
        .filter((c) => !c.artifactsFault)
        .map((c) => c.code)
        .sort(),
    );
  });

  it('counts the artifact’s own failures, not the network’s', () => {
    const failed = { ran: 'portable' as const, outcome: 'failed' as const, latency: [] };
    assert.deepEqual(summarizeReport({ ...failed, errorCode: 'LOAD_FAILED', failureStage: 'load' }).failure, true);
    assert.deepEqual(
      summarizeReport({ ...failed, errorCode: 'OUTPUT_MISMATCH', failureStage: 'compare' }).failure,
      true,
    );
    for (const [errorCode, failureStage] of [
      ['DOWNLOAD_FAILED', 'download'],
      ['API_UNREACHABLE', 'download'],
      ['UNKNOWN_SIGNING_KEY', 'verify'],
    ]) {
      const s = summarizeReport({ ...failed, errorCode, failureStage });
      assert.deepEqual([s.failure, s.otherError], [false, true], errorCode);
    }
  });

  it('takes the speedup as the mean log ratio over the timed sizes, and the latency of what ran', () => {
    const s = summarizeReport({
      ran: 'artifact',
      outcome: 'ok',
      latency: [
        { artifactMs: 1, portableMs: 2 },
        { artifactMs: 2, portableMs: 8 },
        { artifactMs: null, portableMs: 3 },
      ],
    });
    assert.ok(Math.abs(Math.exp(s.logSpeedup!) - Math.sqrt(2 * 4)) < 1e-12);
    assert.ok(Math.abs(Math.exp(s.logMs!) - Math.sqrt(2)) < 1e-12);
    const portable = summarizeReport({ ran: 'portable', outcome: 'ok', latency: [{ portableMs: 4 }] });
    assert.equal(portable.logSpeedup, null, 'a portable run says nothing about an artifact’s speed');
    assert.ok(Math.abs(Math.exp(portable.logMs!) - 4) < 1e-12);
  });
});

describe('UUIDv7 report ids', () => {
  it('carry their millisecond and bound monthly partitions', () => {
    const ms = Date.UTC(2026, 11, 5, 1, 2, 3, 456);
    const hex = ms.toString(16).padStart(12, '0');
    const id = `${hex.slice(0, 8)}-${hex.slice(8)}-7abc-8def-0123456789ab`;
    assert.equal(uuid7Millis(id), ms);
    assert.equal(uuid7Millis('0190a000-0000-4000-8000-000000000000'), null, 'a v4 uuid is not a report id');
    assert.equal(monthOf(ms), '2026-12');
    const [from, to] = monthRange('2026-12');
    assert.ok(from <= ms && ms < to);
    assert.ok(uuidLowerBound(from) <= id && id < uuidLowerBound(to), 'ids sort into their month');
    assert.deepEqual(monthRange('2026-12')[1], Date.UTC(2027, 0, 1));
  });
});
