import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import x86Levels from './x86-levels.json' with { type: 'json' };
import { capX86Flags, X86_LEVEL_FLAGS, X86_LEVEL_LABELS, x86LevelFromFlags } from './x86-levels.js';

const V4_HOST = [...X86_LEVEL_FLAGS[2], ...X86_LEVEL_FLAGS[3], ...X86_LEVEL_FLAGS[4], 'avx512_vnni', 'amx_tile', 'fpu'];

describe('capX86Flags (KILN_X86_LEVEL_CAP)', () => {
  it('drops every flag of a level above the cap, and the AVX-512/AMX or AVX flags that imply one', () => {
    const v3 = capX86Flags(V4_HOST, 3);
    assert.equal(x86LevelFromFlags(v3), 3);
    assert.ok(!v3.some((f) => f.startsWith('avx512') || f.startsWith('amx')));
    assert.ok(v3.includes('avx2') && v3.includes('fpu'));
    const v2 = capX86Flags(V4_HOST, 2);
    assert.equal(x86LevelFromFlags(v2), 2);
    assert.ok(!v2.some((f) => f.startsWith('avx')));
    assert.equal(x86LevelFromFlags(capX86Flags(V4_HOST, 1)), 1);
  });

  it('no cap, or a cap at or above the CPU, changes nothing', () => {
    assert.deepEqual(capX86Flags(V4_HOST, null), V4_HOST);
    assert.deepEqual(capX86Flags(V4_HOST, 4), V4_HOST);
    const v3Host = [...X86_LEVEL_FLAGS[2], ...X86_LEVEL_FLAGS[3]];
    assert.deepEqual(capX86Flags(v3Host, 3), v3Host);
  });
});

describe('the shared level data (x86-levels.json, also read by the Python packages)', () => {
  it('names levels 1-4, each flag in one level only, none for the baseline', () => {
    assert.deepEqual(
      x86Levels.levels.map((l) => l.level),
      [1, 2, 3, 4],
    );
    assert.deepEqual(x86Levels.levels[0].flags, []);
    const flags = x86Levels.levels.flatMap((l) => l.flags);
    assert.equal(new Set(flags).size, flags.length, 'a flag listed at two levels');
    for (const level of [1, 2, 3, 4] as const) assert.ok(X86_LEVEL_LABELS[level], `level ${level} has no label`);
  });

  it('every implying prefix points at a level above the baseline', () => {
    for (const { prefix, level } of x86Levels.impliedByPrefix) {
      assert.ok(prefix.length > 0 && [3, 4].includes(level), `${prefix} → ${level}`);
    }
  });
});
