// `kiln`: Kiln from a terminal or a CI job. Human output by default, --json for scripts; exit codes in
// ./exit-codes.ts (documented in docs/sdk.md). Progress goes to stderr, results to stdout.
import { readFile } from 'node:fs/promises';
import { createInterface } from 'node:readline/promises';
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { type Compilation, KilnApiError, KilnClient, type ProgressEvent } from '@kiln/sdk';
import { credentialsPath, resolveCredentials, saveCredentials } from './credentials.js';
import { ExitCode, exitCodeFor, UsageError } from './exit-codes.js';
import { formatArtifacts, formatBytes, formatCompilation, formatResolution } from './format.js';
import { progressView, type ProgressView } from './progress-view.js';

interface GlobalOptions {
  apiUrl?: string;
  apiKey?: string;
  json?: boolean;
}

const CLI_VERSION = '0.1.0';
const FINISHED_OK: Compilation['status'][] = ['succeeded'];
const FINISHED: Compilation['status'][] = ['succeeded', 'partial', 'failed', 'cancelled'];

/** Set by a command that wants a non-zero exit without an error (a failed compilation). */
let commandExitCode: ExitCode = ExitCode.OK;

function print(json: boolean | undefined, value: unknown, human: () => string): void {
  process.stdout.write(json ? `${JSON.stringify(value, null, 2)}\n` : `${human()}\n`);
}

async function clientFor(opts: GlobalOptions, view?: ProgressView): Promise<KilnClient> {
  const creds = await resolveCredentials({ apiUrl: opts.apiUrl, apiKey: opts.apiKey });
  return new KilnClient({
    baseUrl: creds.apiUrl,
    apiKey: creds.apiKey,
    onRetry: (e) => view?.onEvent(e),
  });
}

/** Ctrl-C aborts the running operation (the SDK cancels it on the server); a second Ctrl-C exits at once. */
function interruptSignal(view?: ProgressView): AbortSignal {
  const controller = new AbortController();
  process.once('SIGINT', () => {
    view?.log('interrupted: cancelling on the server (Ctrl-C again to quit at once) ...');
    controller.abort();
    process.once('SIGINT', () => process.exit(ExitCode.INTERRUPTED));
  });
  process.once('SIGTERM', () => controller.abort());
  return controller.signal;
}

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('expected a positive integer');
  return n;
}

function targetList(value: string): string[] {
  const targets = value
    .split(',')
    .map((t) => t.trim())
    .filter(Boolean);
  if (targets.length === 0) throw new InvalidArgumentError('expected target ids, e.g. linux-x86_64-v3,linux-x86_64-v4');
  return targets;
}

export function buildProgram(): Command {
  const program = new Command()
    .name('kiln')
    .description('Compile PyTorch models (.pt2 from torch.export) for every hardware target with Kiln.')
    .option('--api-url <url>', 'API URL (default: $KILN_API_URL, then `kiln login`)')
    .option('--api-key <key>', 'API key (default: $KILN_API_KEY, then `kiln login`)')
    .option('--json', 'print machine-readable JSON on stdout (no progress output)')
    .version(CLI_VERSION, '-V, --version')
    .showHelpAfterError()
    .exitOverride();

  program
    .command('login')
    .description('store the API URL and key in ~/.config/kiln/credentials.json (mode 0600)')
    .option('--url <url>', 'API URL')
    .option('--key <key>', 'API key (kiln_...)')
    .action(async (o: { url?: string; key?: string }, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      let apiUrl = o.url ?? g.apiUrl ?? process.env.KILN_API_URL;
      let apiKey = o.key ?? g.apiKey ?? process.env.KILN_API_KEY;
      if ((!apiUrl || !apiKey) && process.stdin.isTTY) {
        const rl = createInterface({ input: process.stdin, output: process.stderr });
        apiUrl ??= (await rl.question('API URL: ')).trim();
        apiKey ??= (await rl.question('API key: ')).trim();
        rl.close();
      }
      if (!apiUrl || !apiKey) throw new UsageError('Give --url and --key (or KILN_API_URL and KILN_API_KEY).');
      const client = new KilnClient({ baseUrl: apiUrl, apiKey, retry: { retries: 2 } });
      const models = await client.listModels(); // checks the key before storing it
      const file = await saveCredentials({ apiUrl: client.baseUrl, apiKey });
      print(
        g.json,
        { apiUrl: client.baseUrl, credentialsFile: file, models: models.length },
        () => `Logged in to ${client.baseUrl} (${models.length} model(s)). Credentials saved to ${file} (mode 0600).`,
      );
    });

  program
    .command('compile')
    .description('upload a .pt2 and compile it for the given targets, with live progress')
    .argument('<file>', '.pt2 written by torch.export.save')
    .requiredOption('-m, --model <name>', 'model name (created if missing) or id')
    .requiredOption('-t, --targets <ids>', 'comma-separated target ids (see GET /v1/targets)', targetList)
    .option('--no-wait', 'return once the compilation is started')
    .option('--reproduce', 'build each target twice and fail it if the parts differ (BUILD_NOT_REPRODUCIBLE)')
    .option('--idempotency-key <key>', 'repeat a run safely: same upload, same compilation')
    .option('--part-size <MiB>', 'upload part size in MiB (5..5120)', positiveInt)
    .option('--concurrency <n>', 'parts uploaded at once (default 4)', positiveInt)
    .option('--no-resume', 'do not continue an interrupted upload of this file')
    .action(
      async (
        file: string,
        o: {
          model: string;
          targets: string[];
          wait: boolean;
          reproduce?: boolean;
          idempotencyKey?: string;
          partSize?: number;
          concurrency?: number;
          resume: boolean;
        },
        cmd: Command,
      ) => {
        const g = cmd.optsWithGlobals<GlobalOptions>();
        const view = progressView(g.json ? 'silent' : process.stderr.isTTY ? 'tty' : 'plain');
        const client = await clientFor(g, view);
        const signal = interruptSignal(view);
        let result;
        try {
          result = await client.compileRemote(file, {
            model: o.model,
            targets: o.targets,
            wait: o.wait,
            reproduce: o.reproduce === true,
            idempotencyKey: o.idempotencyKey,
            partSize: o.partSize ? o.partSize * 1024 * 1024 : undefined,
            concurrency: o.concurrency,
            resumeStateDir: o.resume ? undefined : false,
            signal,
            onProgress: (e: ProgressEvent) => view.onEvent(e),
          });
        } finally {
          view.stop();
        }
        if (result.upload.resumed && !g.json) {
          process.stderr.write(
            `resumed upload ${result.upload.uploadId}: ${result.upload.partsReused} part(s) were already uploaded\n`,
          );
        }
        print(g.json, result, () =>
          [
            `model ${result.model.name} version ${result.version.number} (${result.version.id}, ${formatBytes(result.version.sizeBytes)})`,
            formatCompilation(result.compilation),
            ...(result.artifacts.length ? ['', formatArtifacts(result.artifacts)] : []),
          ].join('\n'),
        );
        if (o.wait && !FINISHED_OK.includes(result.compilation.status)) commandExitCode = ExitCode.COMPILATION_FAILED;
      },
    );

  program
    .command('status')
    .description('show a compilation, per target')
    .argument('<compilationId>')
    .option('--wait', 'wait until it ends')
    .action(async (id: string, o: { wait?: boolean }, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      const view = progressView(g.json || !o.wait ? 'silent' : 'plain');
      const client = await clientFor(g, view);
      const c = o.wait
        ? await client.waitForCompilation(id, { signal: interruptSignal(view), onProgress: (e) => view.onEvent(e) })
        : await client.getCompilation(id);
      print(g.json, c, () => formatCompilation(c));
      if (FINISHED.includes(c.status) && !FINISHED_OK.includes(c.status)) commandExitCode = ExitCode.COMPILATION_FAILED;
    });

  program
    .command('artifacts')
    .description("list a version's artifacts with their numbers and requirements")
    .argument('<versionId>')
    .action(async (versionId: string, _o: unknown, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      const artifacts = await (await clientFor(g)).listArtifacts(versionId);
      print(g.json, artifacts, () => formatArtifacts(artifacts));
    });

  program
    .command('download')
    .description('download an artifact (sha256-verified parts) and assemble the loadable package')
    .argument('<artifactId>')
    .option('-o, --output <dir>', 'destination folder', '.')
    .option('--no-assemble', 'keep the parts only')
    .action(async (artifactId: string, o: { output: string; assemble: boolean }, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      const client = await clientFor(g);
      const result = await client.download(artifactId, o.output, { assemble: o.assemble, signal: interruptSignal() });
      print(g.json, result, () =>
        [
          ...result.parts.map(
            (p) => `${p.role.padEnd(8)} ${p.path} (${formatBytes(p.size)}, sha256 ${p.sha256.slice(0, 16)}…)`,
          ),
          `manifest ${result.manifestPath}`,
          ...(result.packagePath ? [`package  ${result.packagePath}  (torch._inductor.aoti_load_package)`] : []),
        ].join('\n'),
      );
    });

  program
    .command('resolve')
    .description('which artifact a device with this fingerprint should run, and why')
    .argument('<model>', 'model name or id, optionally @channel')
    .requiredOption('-f, --fingerprint <file>', 'device fingerprint JSON (kiln-device fingerprint)')
    .option('--version <n>', 'a version number instead of the latest', positiveInt)
    .action(async (model: string, o: { fingerprint: string; version?: number }, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      let fingerprint: Record<string, unknown>;
      try {
        fingerprint = JSON.parse(await readFile(o.fingerprint, 'utf8')) as Record<string, unknown>;
      } catch (err) {
        throw new UsageError(`Cannot read the fingerprint ${o.fingerprint}: ${(err as Error).message}`);
      }
      const r = await (
        await clientFor(g)
      ).resolve({ model, fingerprint, ...(o.version ? { version: o.version } : {}) });
      print(g.json, r, () => formatResolution(r));
    });

  return program;
}

export async function main(argv: string[]): Promise<ExitCode> {
  const program = buildProgram();
  const json = argv.includes('--json');
  try {
    await program.parseAsync(argv);
    return commandExitCode;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version are not errors; everything else commander rejects is usage.
      return err.exitCode === 0 ? ExitCode.OK : ExitCode.USAGE;
    }
    const code = exitCodeFor(err);
    if (json) {
      const body =
        err instanceof KilnApiError
          ? { error: { code: err.code, message: err.message, status: err.status, details: err.details } }
          : { error: { code: (err as Error).name, message: (err as Error).message } };
      process.stdout.write(`${JSON.stringify({ ...body, exitCode: code }, null, 2)}\n`);
    } else {
      const prefix = err instanceof KilnApiError ? `${err.code}: ` : '';
      process.stderr.write(`kiln: ${prefix}${(err as Error).message}\n`);
      if (code === ExitCode.AUTH && !(err instanceof UsageError)) {
        process.stderr.write(`(credentials: --api-key, $KILN_API_KEY or ${credentialsPath()})\n`);
      }
    }
    return code;
  }
}

process.exitCode = await main(process.argv);
