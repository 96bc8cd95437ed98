/**
 * x86-64 micro-architecture levels (the psABI's x86-64-v2/v3/v4), decided from the CPU flags Linux
 * prints in /proc/cpuinfo. Build workers use this to know which targets they can build AND run for
 * verification; the resolver uses it to know which artifacts a device can execute without SIGILL.
 * The flag lists, labels and implying prefixes are data shared with the Python packages: x86-levels.json.
 */
import x86Levels from './x86-levels.json' with { type: 'json' };

type Level = 1 | 2 | 3 | 4;

function levelEntry(level: Level): { label: string; flags: readonly string[] } {
  const entry = x86Levels.levels.find((l) => l.level === level);
  if (!entry) throw new Error(`x86-levels.json has no level ${level}`);
  return entry;
}

/** The /proc/cpuinfo flags each level adds to the one below it. */
export const X86_LEVEL_FLAGS: Record<2 | 3 | 4, readonly string[]> = {
  2: levelEntry(2).flags,
  3: levelEntry(3).flags,
  4: levelEntry(4).flags,
};

/** What each level adds, in words: "AVX2/FMA/BMI". */
export const X86_LEVEL_LABELS: Record<Level, string> = {
  1: levelEntry(1).label,
  2: levelEntry(2).label,
  3: levelEntry(3).label,
  4: levelEntry(4).label,
};

/** Highest level whose flags (and those of every lower level) are all present; 1 = baseline x86-64. */
export function x86LevelFromFlags(flags: Iterable<string>): Level {
  const have = new Set(flags);
  let level: Level = 1;
  for (const candidate of [2, 3, 4] as const) {
    if (!X86_LEVEL_FLAGS[candidate].every((f) => have.has(f))) break;
    level = candidate;
  }
  return level;
}

/** Flags of the first processor in a /proc/cpuinfo text. */
export function parseCpuinfoFlags(cpuinfo: string): string[] {
  const line = cpuinfo.split('\n').find((l) => /^flags\s*:/.test(l));
  return line
    ? line
        .replace(/^flags\s*:\s*/, '')
        .trim()
        .split(/\s+/)
    : [];
}

/** Flag-name prefixes that imply a level: an AVX-512 or AMX flag means v4 hardware, an AVX flag v3 hardware. */
const IMPLIED_BY_PREFIX = x86Levels.impliedByPrefix as readonly { prefix: string; level: 3 | 4 }[];

/**
 * The flags a CPU capped at `cap` would show: every flag of a level above the cap (and every AVX-512/AMX or AVX
 * flag that implies such a level) is dropped. This is how KILN_X86_LEVEL_CAP makes a host probe as an older CPU:
 * the worker then serves, and the device runtime reports, only what that CPU could run.
 */
export function capX86Flags(flags: readonly string[], cap: Level | null | undefined): string[] {
  if (!cap || cap >= 4) return [...flags];
  const dropped = new Set<string>();
  for (const level of [2, 3, 4] as const) if (level > cap) for (const f of X86_LEVEL_FLAGS[level]) dropped.add(f);
  return flags.filter(
    (f) => !dropped.has(f) && !IMPLIED_BY_PREFIX.some((p) => p.level > cap && f.startsWith(p.prefix)),
  );
}
