/** "linux-x86_64-v3" → "x86_64-v3"; "linux-x86_64-cuda-sm90" → "cuda-sm90". Short enough for a chip. */
export function targetShortLabel(targetId: string): string {
  return targetId.replace(/^linux-/, '').replace(/^x86_64-cuda-/, 'cuda-');
}
