// What the upload dialog checks before sending: the file's name, and the model name it suggests from it.

/** Whether a dropped or picked file looks like a torch.export archive (the server validates it fully). */
export function isPt2Filename(name: string): boolean {
  return /\.pt2$/i.test(name.trim());
}

/**
 * A model name the API accepts (letters, digits, ".", "_", "-"; starting with a letter or digit; at most
 * 100 characters), derived from a file name: "ResNet 50 (final).pt2" → "ResNet-50-final".
 */
export function modelNameFromFilename(filename: string): string {
  const base = filename
    .trim()
    .replace(/^.*[\\/]/, '')
    .replace(/\.pt2$/i, '');
  const name = base
    .replace(/[^A-Za-z0-9._-]+/g, '-')
    .replace(/-{2,}/g, '-')
    .replace(/^[^A-Za-z0-9]+/, '')
    .replace(/[-.]+$/, '')
    .slice(0, 100);
  return name || 'model';
}

export const MODEL_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/** Why a model name would be refused, or null when the API will take it. */
export function modelNameProblem(name: string): string | null {
  if (name.length === 0) return 'Give the model a name.';
  if (name.length > 100) return 'At most 100 characters.';
  if (!MODEL_NAME_PATTERN.test(name)) return 'Letters, digits, ".", "_" and "-" only, starting with a letter or digit.';
  return null;
}
