import { deviceX86Level } from './cpu-level.js';
import type { DeviceFingerprint } from './fingerprint.js';

/**
 * A device class: the devices that should run a given artifact alike. Fleet evidence (what devices report about
 * an artifact: load failures, on-device speed) is kept and read per (artifact, device class).
 *
 * The class is what decides how an artifact behaves on a device: OS and CPU architecture, the x86-64 level (from
 * the CPU flags, as the resolver reads it), the CPU model (two v3 CPUs can differ 2x in speed), the exact torch
 * build (AOTInductor's runtime is torch's) and the GPUs by name and compute capability. Left out on purpose:
 * hostname, glibc/libstdc++ versions (they decide *whether* an artifact may load, which the hard rules check
 * before any evidence is read) and the GPU driver version (too fine: it would split a fleet into one class per
 * driver update).
 */
export interface DeviceClass {
  /** `dc-` + 16 hex digits: FNV-1a 64 of the label. Stable across releases: changing it orphans all evidence. */
  key: string;
  /** The canonical description the key is a hash of, e.g. `linux x86_64 · x86-64-v3 · AMD EPYC 7B13 · torch 2.13.0+cpu · no GPU`. */
  label: string;
}

/** Collapses runs of whitespace (cpuinfo pads model names) so equal CPUs get equal labels. */
function clean(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}

/** The class of a validated fingerprint (validateFingerprint's normalised value). */
export function deviceClassOf(fp: DeviceFingerprint): DeviceClass {
  const parts = [`${fp.os} ${fp.arch}`];
  if (fp.arch === 'x86_64') parts.push(`x86-64-v${deviceX86Level(fp).level}`);
  parts.push(fp.cpu.model ? clean(fp.cpu.model) : 'unknown CPU');
  parts.push(`torch ${fp.torch.version}`);
  const gpus = fp.gpus.map((g) => `${clean(g.name)} (${g.computeCapability})`).sort();
  parts.push(gpus.length > 0 ? gpus.join(' + ') : 'no GPU');
  const label = parts.join(' · ');
  return { key: `dc-${fnv1a64(label)}`, label };
}

const FNV_OFFSET = 0xcbf29ce484222325n;
const FNV_PRIME = 0x100000001b3n;
const MASK_64 = (1n << 64n) - 1n;

/** FNV-1a 64 over the UTF-8 bytes, as 16 hex digits (pure: no crypto module in a browser bundle or here). */
export function fnv1a64(text: string): string {
  let hash = FNV_OFFSET;
  for (const byte of new TextEncoder().encode(text)) {
    hash ^= BigInt(byte);
    hash = (hash * FNV_PRIME) & MASK_64;
  }
  return hash.toString(16).padStart(16, '0');
}
