import { fnv1a64 } from './device-class.js';

/** Buckets of a rollout's population: a stage of p % covers buckets [0, p × 100). */
export const ROLLOUT_BUCKETS = 10_000;

/**
 * Which bucket (0 ≤ b < 10 000) a device falls in for one rollout: FNV-1a 64 of the rollout id and the device
 * id, modulo 10 000. Deterministic, so a device keeps its arm for the whole rollout (10 % ⊂ 50 % ⊂ 100 %: a device
 * that got the new version at 10 % keeps it at 50 %), and independent between rollouts (the rollout id is in the
 * hash, so the same devices are not always the first to get every new version).
 */
export function rolloutBucket(rolloutId: string, deviceId: string): number {
  return Number(BigInt(`0x${fnv1a64(`${rolloutId}\u0000${deviceId}`)}`) % BigInt(ROLLOUT_BUCKETS));
}

/** Whether a device is in a stage of `percent` % (0–100, two decimals at most) of this rollout. */
export function inRolloutStage(rolloutId: string, deviceId: string, percent: number): boolean {
  return rolloutBucket(rolloutId, deviceId) < Math.round(percent * (ROLLOUT_BUCKETS / 100));
}
