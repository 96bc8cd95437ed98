import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { UsageError, ExitCode } from './exit-codes.js';

export interface Credentials {
  apiUrl: string;
  apiKey: string;
}

/** ~/.config/kiln/credentials.json (or $XDG_CONFIG_HOME/kiln/credentials.json). */
export function credentialsPath(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CONFIG_HOME || path.join(os.homedir(), '.config');
  return path.join(base, 'kiln', 'credentials.json');
}

/**
 * Where the CLI gets its API URL and key, first match wins: --api-url/--api-key, then KILN_API_URL/
 * KILN_API_KEY, then the credentials file `kiln login` wrote.
 */
export async function resolveCredentials(
  flags: { apiUrl?: string; apiKey?: string },
  env: NodeJS.ProcessEnv = process.env,
): Promise<Credentials> {
  let stored: Partial<Credentials> = {};
  try {
    stored = JSON.parse(await readFile(credentialsPath(env), 'utf8')) as Partial<Credentials>;
  } catch {
    // none yet
  }
  const apiUrl = flags.apiUrl ?? env.KILN_API_URL ?? stored.apiUrl;
  const apiKey = flags.apiKey ?? env.KILN_API_KEY ?? stored.apiKey;
  if (!apiUrl || !apiKey) {
    throw new UsageError(
      'No credentials: run `kiln login --url <api url> --key <api key>`, or set KILN_API_URL and KILN_API_KEY.',
      ExitCode.AUTH,
    );
  }
  return { apiUrl, apiKey };
}

/** Writes the credentials file readable by its owner only (0600, in a 0700 folder). */
export async function saveCredentials(creds: Credentials, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const file = credentialsPath(env);
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, JSON.stringify(creds, null, 2) + '\n', { mode: 0o600 });
  await chmod(tmp, 0o600);
  await rename(tmp, file);
  return file;
}
