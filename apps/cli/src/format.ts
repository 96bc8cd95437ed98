import type { Artifact, Compilation, Resolution } from '@kiln/sdk';
import { describeBuild } from './build-steps.js';

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (Math.abs(v) >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${u === 0 ? v.toFixed(0) : v.toFixed(1)} ${units[u]}`;
}

/** Left-aligned columns. */
export function table(rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join('  ')).join('\n');
}

export function formatCompilation(c: Compilation): string {
  const rows = [['TARGET', 'STATUS', 'ARTIFACT', 'SPEEDUP', 'MAX ABS ERR']];
  for (const b of c.builds) {
    rows.push([
      b.targetId,
      describeBuild(b),
      b.artifact?.id ?? '-',
      b.artifact ? `${b.artifact.speedup.toFixed(2)}x` : '-',
      b.artifact ? b.artifact.maxAbsError.toExponential(1) : '-',
    ]);
  }
  const errors = c.builds.filter((b) => b.errorMessage).map((b) => `  ${b.targetId}: ${b.errorMessage}`);
  return [
    `compilation ${c.id} (version ${c.modelVersionId}): ${c.status}`,
    table(rows),
    ...(errors.length ? ['errors:', ...errors] : []),
  ].join('\n');
}

export function formatArtifacts(artifacts: Artifact[]): string {
  if (artifacts.length === 0) return 'no artifacts yet';
  const rows = [['ARTIFACT', 'TARGET', 'SIZE', 'SPEEDUP', 'EAGER', 'COMPILED', 'MAX ABS ERR', 'NEEDS']];
  for (const a of artifacts) {
    rows.push([
      a.id,
      a.targetId,
      formatBytes(a.sizeBytes),
      `${a.timing.speedup.toFixed(2)}x`,
      `${a.timing.eagerMs.toFixed(2)} ms`,
      `${a.timing.compiledMs.toFixed(2)} ms`,
      a.verification.maxAbsError.toExponential(1),
      [
        a.requires.x86Level ? `x86-64-v${a.requires.x86Level}` : null,
        a.requires.computeCapability ? `sm ${a.requires.computeCapability}` : null,
        `torch ${a.requires.torch}`,
        a.requires.glibc,
      ]
        .filter(Boolean)
        .join(', '),
    ]);
  }
  return table(rows);
}

export function formatResolution(r: Resolution): string {
  const lines = [
    `model ${r.model.name} version ${r.version.number} (by ${r.version.selectedBy}${r.version.channel ? ` ${r.version.channel}` : ''})`,
  ];
  if (r.artifact) {
    lines.push(
      `artifact ${r.artifact.id} for ${r.artifact.targetId}, ${r.artifact.speedup.toFixed(2)}x, ${formatBytes(r.artifact.size)}`,
    );
    for (const why of r.artifact.reasons) lines.push(`  + ${why}`);
  } else {
    lines.push(`no compiled artifact fits: portable fallback (${r.fallback.reason})`);
  }
  for (const rej of r.rejected) lines.push(`  - ${rej.targetId} (${rej.artifactId}): ${rej.reasons.join('; ')}`);
  return lines.join('\n');
}
