import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { createJobFolder, jobSandboxRequest, type JobSandboxSettings } from './job-folder.js';
import { runSandboxed } from './sandbox-run.js';

/**
 * inductor's vector-ISA check, once per worker and toolchain instead of once per build
 * (python/driver/kiln_driver/vec_isa.py says what it is and why the driver may then skip it): the worker runs
 * `python -m kiln_driver vec-isa --cxx PATH` inside the build sandbox, with the settings builds get, and hands the
 * answer to every build job (`vecIsa`). The answer is kept in the worker's own folder (never in a job's view), keyed by
 * what it depends on, so a restarted worker on the same host and toolchain does not pay the ~10 s again.
 */

export interface VecIsaAnswer {
  /** The compiler the check compiled with, as builds resolve it (absolute). */
  cxx: string;
  /** The vector ISAs the CPU lists, as inductor names them ("avx512", "avx2"). */
  listed: string[];
  /** Those that compiled and loaded. */
  valid: string[];
}

/** What the answer depends on: the interpreter (and so torch), the compiler binary and its version, the CPU. */
export interface VecIsaKeyParts {
  pythonPath: string;
  torch: string | null;
  cxx: string;
  compilerVersion: string | null;
  cpuFlags: readonly string[];
}

export function vecIsaKey(parts: VecIsaKeyParts): string {
  const text = JSON.stringify([
    parts.pythonPath,
    parts.torch,
    parts.cxx,
    parts.compilerVersion,
    [...parts.cpuFlags].sort(),
  ]);
  return createHash('sha256').update(text).digest('hex');
}

function isAnswer(value: unknown): value is VecIsaAnswer {
  const a = value as VecIsaAnswer | null;
  const names = (v: unknown): boolean => Array.isArray(v) && v.every((n) => typeof n === 'string');
  return (
    typeof a === 'object' &&
    a !== null &&
    typeof a.cxx === 'string' &&
    a.cxx.startsWith('/') &&
    names(a.listed) &&
    names(a.valid)
  );
}

/** Runs the check in the sandbox; null when it cannot answer (not x86, or the run failed: `problem` says why). */
export async function runVecIsaCheck(
  settings: JobSandboxSettings,
  cxx: string,
  signal?: AbortSignal,
): Promise<{ answer: VecIsaAnswer | null; problem: string | null }> {
  const folder = await createJobFolder(settings.workRoot);
  try {
    const request = await jobSandboxRequest({ ...settings, timeoutMs: Math.min(settings.timeoutMs, 300_000) }, folder, [
      '-m',
      'kiln_driver',
      'vec-isa',
      '--cxx',
      cxx,
    ]);
    await Promise.all([folder.modelPath, folder.jobPath].map((f) => writeFile(f, '', { mode: 0o444 })));
    let answer: VecIsaAnswer | null = null;
    let answered = false;
    const result = await runSandboxed({
      ...request,
      signal,
      onStdoutLine: (line) => {
        try {
          const parsed = JSON.parse(line) as { event?: string; answer?: unknown };
          if (parsed.event !== 'vec-isa') return;
          answered = true;
          answer = isAnswer(parsed.answer) ? parsed.answer : null;
        } catch {
          // not ours
        }
      },
    });
    if (answered && result.exitCode === 0) return { answer, problem: answer ? null : 'no answer off x86' };
    const why = result.timedOut ? 'timed out' : `exit ${result.exitCode ?? result.signal}`;
    return { answer: null, problem: `${why}: ${result.stderrTail.trim().split('\n').pop() ?? 'no output'}` };
  } catch (err) {
    return { answer: null, problem: (err as Error).message };
  } finally {
    await folder.remove();
  }
}

/** The answer kept in `file` for `key`; null when there is none (or another key's, or an unreadable one). */
export async function keptVecIsaAnswer(file: string, key: string): Promise<VecIsaAnswer | null> {
  try {
    const kept = JSON.parse(await readFile(file, 'utf8')) as { key?: string; answer?: unknown };
    return kept.key === key && isAnswer(kept.answer) ? kept.answer : null;
  } catch {
    return null;
  }
}

/** Keeps `answer` for `key` in `file` (atomically: a reader sees the old file or the new one). Best effort. */
export async function keepVecIsaAnswer(file: string, key: string, answer: VecIsaAnswer): Promise<void> {
  try {
    await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
    const tmp = `${file}.${process.pid}.tmp`;
    await writeFile(tmp, JSON.stringify({ key, answer }) + '\n', { mode: 0o600 });
    await rename(tmp, file);
  } catch {
    // the next start checks again
  }
}
