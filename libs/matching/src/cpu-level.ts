import { X86_LEVEL_FLAGS, X86_LEVEL_LABELS, x86LevelFromFlags } from '@kiln/targets/x86-levels';
import type { DeviceFingerprint, X86Level } from './fingerprint.js';

export interface DeviceX86Level {
  level: X86Level;
  /**
   * `flags`: decided from the CPU flags (they win over a reported level); `reported`: no flags were
   * sent, the device's own cpu.x86Level is used; `baseline`: neither, so only x86-64 (v1) is assumed.
   */
  source: 'flags' | 'reported' | 'baseline';
  /** Set when the device reported a level that its flags contradict (the flags were used). */
  ignoredReportedLevel?: X86Level;
}

/** "x86-64-v4 (AVX-512 F/BW/CD/DQ/VL)". */
export function describeX86Level(level: number): string {
  const label = (X86_LEVEL_LABELS as Record<number, string | undefined>)[level];
  return label ? `x86-64-v${level} (${label})` : `x86-64-v${level} (unknown level)`;
}

/**
 * The device CPU's x86-64 level. Flags are what the kernel actually saw; a reported level is the
 * runtime's own conclusion and may come from an older or buggy runtime, so flags win when both exist.
 */
export function deviceX86Level(fp: DeviceFingerprint): DeviceX86Level {
  if (fp.cpu.flags.length > 0) {
    const level = x86LevelFromFlags(fp.cpu.flags);
    const reported = fp.cpu.x86Level;
    return reported !== undefined && reported !== level
      ? { level, source: 'flags', ignoredReportedLevel: reported }
      : { level, source: 'flags' };
  }
  if (fp.cpu.x86Level !== undefined) return { level: fp.cpu.x86Level, source: 'reported' };
  return { level: 1, source: 'baseline' };
}

/** Flags of every level up to `level` that the device lacks, in the catalog's order. */
export function missingX86Flags(flags: readonly string[], level: number): string[] {
  const have = new Set(flags);
  const missing: string[] = [];
  for (const l of [2, 3, 4] as const) {
    if (l > level) break;
    for (const f of X86_LEVEL_FLAGS[l]) if (!have.has(f)) missing.push(f);
  }
  return missing;
}

/** "this CPU's x86-64-v3 (from its flags; its reported x86Level 4 was ignored: flags win)". */
export function describeDeviceX86Level(d: DeviceX86Level): string {
  switch (d.source) {
    case 'flags':
      return d.ignoredReportedLevel === undefined
        ? `x86-64-v${d.level} (from its CPU flags)`
        : `x86-64-v${d.level} (from its CPU flags; its reported x86Level ${d.ignoredReportedLevel} was ignored: flags win)`;
    case 'reported':
      return `x86-64-v${d.level} (reported level; no CPU flags sent)`;
    case 'baseline':
      return 'x86-64-v1 (assumed: neither CPU flags nor x86Level sent)';
  }
}
