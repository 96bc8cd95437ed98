/**
 * x86-64 micro-architecture levels (the psABI's x86-64-v2/v3/v4), decided from the CPU flags Linux
 * prints in /proc/cpuinfo. Build workers use this to know which targets they can build AND run for
 * verification; the resolver uses it to know which artifacts a device can execute without SIGILL.
 */
export const X86_LEVEL_FLAGS: Record<2 | 3 | 4, readonly string[]> = {
  2: ['cx16', 'lahf_lm', 'popcnt', 'pni', 'sse4_1', 'sse4_2', 'ssse3'],
  3: ['avx', 'avx2', 'bmi1', 'bmi2', 'f16c', 'fma', 'abm', 'movbe', 'xsave'],
  4: ['avx512f', 'avx512bw', 'avx512cd', 'avx512dq', 'avx512vl'],
};

/** Highest level whose flags (and those of every lower level) are all present; 1 = baseline x86-64. */
export function x86LevelFromFlags(flags: Iterable<string>): 1 | 2 | 3 | 4 {
  const have = new Set(flags);
  let level: 1 | 2 | 3 | 4 = 1;
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
const IMPLIED_BY_PREFIX: readonly { prefix: string; level: 3 | 4 }[] = [
  { prefix: 'avx512', level: 4 },
  { prefix: 'amx', level: 4 },
  { prefix: 'avx', level: 3 },
];

/**
 * The flags a CPU capped at `cap` would show: every flag of a level above the cap (and every AVX-512/AMX or AVX
 * flag that implies such a level) is dropped. This is how KILN_X86_LEVEL_CAP makes a host probe as an older CPU:
 * the worker then serves, and the device runtime reports, only what that CPU could run.
 */
export function capX86Flags(flags: readonly string[], cap: 1 | 2 | 3 | 4 | null | undefined): string[] {
  if (!cap || cap >= 4) return [...flags];
  const dropped = new Set<string>();
  for (const level of [2, 3, 4] as const) if (level > cap) for (const f of X86_LEVEL_FLAGS[level]) dropped.add(f);
  return flags.filter(
    (f) => !dropped.has(f) && !IMPLIED_BY_PREFIX.some((p) => p.level > cap && f.startsWith(p.prefix)),
  );
}
