import {
  AVX2_LAPTOP_FINGERPRINT,
  AVX512_SERVER_FINGERPRINT,
  type DeviceFingerprint,
  deviceX86Level,
  GRAVITON_FINGERPRINT,
  H100_BOX_FINGERPRINT,
  SSE42_BOX_FINGERPRINT,
  validateFingerprint,
} from '@kiln/matching';

/**
 * The resolver playground's presets: the same real devices docs/fingerprint.md and the matching tests use
 * (@kiln/matching is pure TypeScript, so the browser bundle takes it as it is).
 */
export interface FingerprintPreset {
  id: string;
  label: string;
  description: string;
  fingerprint: DeviceFingerprint;
}

export const FINGERPRINT_PRESETS: readonly FingerprintPreset[] = [
  {
    id: 'avx2-laptop',
    label: 'AVX2 laptop',
    description: 'Core i7-8650U, Ubuntu 22.04, CPU torch',
    fingerprint: AVX2_LAPTOP_FINGERPRINT,
  },
  {
    id: 'avx512-server',
    label: 'AVX-512 server',
    description: 'Sapphire Rapids Xeon, Debian 12, CPU torch',
    fingerprint: AVX512_SERVER_FINGERPRINT,
  },
  {
    id: 'h100-box',
    label: 'H100',
    description: 'H100 80GB, Ubuntu 24.04, torch for CUDA 12.8',
    fingerprint: H100_BOX_FINGERPRINT,
  },
  {
    id: 'sse42-box',
    label: 'SSE4.2 box',
    description: 'Westmere Xeon (2010), Debian 11',
    fingerprint: SSE42_BOX_FINGERPRINT,
  },
  {
    id: 'graviton',
    label: 'Graviton (arm64)',
    description: 'Neoverse-N1, Amazon Linux 2023',
    fingerprint: GRAVITON_FINGERPRINT,
  },
];

export function findPreset(id: string): FingerprintPreset | undefined {
  return FINGERPRINT_PRESETS.find((p) => p.id === id);
}

/** The JSON the playground's editor shows: two-space indent, CPU flags on one line so it stays readable. */
export function fingerprintToJson(fp: DeviceFingerprint): string {
  const FLAGS = '"__kiln_flags__"';
  const json = JSON.stringify({ ...fp, cpu: { ...fp.cpu, flags: '__kiln_flags__' } }, null, 2);
  return json.replace(FLAGS, JSON.stringify(fp.cpu.flags));
}

export type ParsedFingerprint = { ok: true; value: DeviceFingerprint } | { ok: false; errors: string[] };

/** Parses and validates the editor's text with the resolver's own rules, before anything is sent. */
export function parseFingerprint(text: string): ParsedFingerprint {
  let input: unknown;
  try {
    input = JSON.parse(text);
  } catch (err) {
    return { ok: false, errors: [`Not valid JSON: ${err instanceof Error ? err.message : String(err)}`] };
  }
  const checked = validateFingerprint(input);
  return checked.ok ? { ok: true, value: checked.value } : { ok: false, errors: checked.errors };
}

/** One line about a device: "x86_64 · x86-64-v3 · glibc 2.35 · torch 2.13.0+cpu · no GPU". */
export function describeDevice(fp: DeviceFingerprint): string {
  const parts: string[] = [`${fp.os}/${fp.arch}`];
  if (fp.arch === 'x86_64') parts.push(`x86-64-v${deviceX86Level(fp).level}`);
  parts.push(fp.libc.name === 'glibc' ? `glibc ${fp.libc.version ?? '?'}` : fp.libc.name);
  parts.push(`torch ${fp.torch.version}`);
  parts.push(fp.gpus.length === 0 ? 'no GPU' : fp.gpus.map((g) => `${g.name} (${g.computeCapability})`).join(', '));
  return parts.join(' · ');
}
