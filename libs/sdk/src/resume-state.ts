import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

/**
 * Automatic resume: while a file uploads, a small state file remembers its upload id, keyed by the API,
 * the model, the file's absolute path, size and modification time. Running the same upload again (after a
 * crash, a kill, a lost network) finds it and continues with the parts S3 does not have yet. The file is
 * removed when the upload completes or is cancelled. Default folder: $XDG_CACHE_HOME/kiln/uploads (else
 * ~/.cache/kiln/uploads), never next to the model (that folder may be read-only, or shared).
 */
export interface ResumeRecord {
  version: 1;
  uploadId: string;
  baseUrl: string;
  modelId: string;
  path: string;
  size: number;
  mtimeMs: number;
  createdAt: string;
}

export function defaultResumeDir(env: NodeJS.ProcessEnv = process.env): string {
  const cache = env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(cache, 'kiln', 'uploads');
}

export class ResumeStore {
  constructor(private readonly dir: string) {}

  fileFor(key: Omit<ResumeRecord, 'version' | 'uploadId' | 'createdAt'>): string {
    const id = createHash('sha256')
      .update(JSON.stringify([key.baseUrl, key.modelId, key.path, key.size, key.mtimeMs]))
      .digest('hex')
      .slice(0, 32);
    return path.join(this.dir, `${id}.json`);
  }

  async load(key: Omit<ResumeRecord, 'version' | 'uploadId' | 'createdAt'>): Promise<ResumeRecord | null> {
    try {
      const record = JSON.parse(await readFile(this.fileFor(key), 'utf8')) as ResumeRecord;
      const matches =
        record.version === 1 &&
        record.baseUrl === key.baseUrl &&
        record.modelId === key.modelId &&
        record.path === key.path &&
        record.size === key.size &&
        record.mtimeMs === key.mtimeMs;
      return matches ? record : null;
    } catch {
      return null; // none, or unreadable: start afresh
    }
  }

  async save(record: ResumeRecord): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const file = this.fileFor(record);
    const tmp = `${file}.${process.pid}.tmp`;
    await writeFile(tmp, JSON.stringify(record, null, 2), { mode: 0o600 });
    await rename(tmp, file);
  }

  async remove(key: Omit<ResumeRecord, 'version' | 'uploadId' | 'createdAt'>): Promise<void> {
    await rm(this.fileFor(key), { force: true });
  }
}
