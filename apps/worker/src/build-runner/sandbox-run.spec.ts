import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { chmod, lstat, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { SandboxUnavailableError } from './sandbox-plan.js';
import type { SandboxHost } from './sandbox-probe.js';
import { runSandboxed, type RunSandboxedOptions, type SandboxResult } from './sandbox-run.js';
import { etcView } from './sandbox-view.js';
import { requireFullSandbox } from './testing/require-sandbox.js';

// Real processes in the real sandbox (bubblewrap as nobody in the job's cgroups), no mocks. Every test needs the
// full sandbox (testing/require-sandbox.ts says why when the host lacks it).

let workRoot: string;
let etc: string[];

before(async () => {
  workRoot = await mkdtemp(path.join(os.tmpdir(), 'kiln-sandbox-spec-'));
  // Searchable but not listable by the sandbox user, like a worker's jobs folder.
  await chmod(workRoot, 0o711);
  etc = await etcView();
});

after(async () => {
  await rm(workRoot, { recursive: true, force: true });
});

async function newJobDir(): Promise<string> {
  const dir = await mkdtemp(path.join(workRoot, 'job-'));
  await chmod(dir, 0o711);
  return dir;
}

async function run(t: TestContext, script: string, extra: Partial<RunSandboxedOptions> = {}): Promise<SandboxResult> {
  const host = extra.host ?? (await requireFullSandbox(t));
  assert.ok(host);
  const jobDir = extra.jobDir ?? (await newJobDir());
  return runSandboxed({
    argv: ['/usr/bin/python3', '-c', script],
    cwd: jobDir,
    env: { PYTHONUNBUFFERED: '1', HOME: path.join(jobDir, 'home'), TMPDIR: path.join(jobDir, 'tmp') },
    timeoutMs: 30_000,
    memoryBytes: 256 * 1024 * 1024,
    killGraceMs: 200,
    readOnly: etc,
    writable: [path.join(jobDir, 'home'), path.join(jobDir, 'tmp')],
    ...extra,
    jobDir,
    host,
  });
}

/** Processes anywhere on the host whose command line contains `marker` (works across pid namespaces). */
async function processesWith(marker: string): Promise<number[]> {
  const found: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    const cmdline = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.includes(marker)) found.push(Number(entry));
  }
  return found;
}

function uniqueMarker(): string {
  return `kiln-marker-${process.pid}-${Math.random().toString(36).slice(2)}`;
}

function listen(): Promise<Server> {
  return new Promise((resolve) => {
    const server = createServer((s) => s.end('hello from the host\n'));
    server.listen(0, '0.0.0.0', () => resolve(server));
  });
}

describe('runSandboxed: the walls', () => {
  it('has no network: the host’s listeners (loopback and its other addresses) are unreachable', async (t) => {
    const server = await listen();
    try {
      const port = (server.address() as { port: number }).port;
      const addresses = Object.values(os.networkInterfaces())
        .flat()
        .filter((a) => a?.family === 'IPv4')
        .map((a) => a.address);
      assert.ok(addresses.includes('127.0.0.1'));
      const result = await run(
        t,
        [
          'import socket, errno, json',
          'out = {}',
          `for host in ${JSON.stringify(addresses)}:`,
          '    s = socket.socket(); s.settimeout(3)',
          '    try:',
          `        s.connect((host, ${port})); out[host] = s.recv(100).decode()`,
          '    except OSError as e:',
          '        out[host] = errno.errorcode.get(e.errno, str(e))',
          'print(json.dumps(out))',
        ].join('\n'),
      );
      assert.equal(result.exitCode, 0, result.stderrTail);
      const seen = JSON.parse(result.stdoutTail) as Record<string, string>;
      assert.deepEqual(Object.keys(seen).sort(), [...addresses].sort());
      for (const [host, outcome] of Object.entries(seen)) {
        assert.doesNotMatch(outcome, /hello from the host/, host);
        assert.match(outcome, /^(ECONNREFUSED|ENETUNREACH|EHOSTUNREACH)$/, `${host}: ${outcome}`);
      }
      assert.equal(result.record.network, 'none');
    } finally {
      server.close();
    }
  });

  it('runs as nobody without groups, capabilities or new privileges', async (t) => {
    const jobDir = await newJobDir();
    const result = await run(
      t,
      'import os; s = open("/proc/self/status").read(); print(os.getuid(), os.getgid(), os.getgroups()); ' +
        'print([l for l in s.splitlines() if l.startswith(("Cap", "NoNewPrivs"))]); ' +
        'open(os.path.join(os.environ["HOME"], "mine"), "w").write("x")',
      { jobDir },
    );
    assert.equal(result.exitCode, 0, result.stderrTail);
    // nobody on the host too (bubblewrap runs as nobody, so its user namespace maps nobody to nobody).
    const mine = await lstat(path.join(jobDir, 'home', 'mine'));
    assert.deepEqual([mine.uid, mine.gid], [65534, 65534]);
    assert.equal(result.record.user, 'nobody');
    assert.match(result.stdoutTail, /^65534 65534 \[\]/);
    for (const cap of ['CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb']) {
      assert.match(result.stdoutTail, new RegExp(`${cap}:\\\\t0000000000000000`), cap);
    }
    assert.match(result.stdoutTail, /NoNewPrivs:\\t1/);
  });

  it('gives the child a clean environment: no worker secrets', async (t) => {
    process.env.S3_SECRET_ACCESS_KEY = 'do-not-leak-me';
    process.env.DATABASE_URL = 'postgres://secret@db/kiln';
    try {
      const result = await run(t, 'import os, json; print(json.dumps(dict(os.environ)))', {
        env: { KILN_JOB_FLAG: '1' },
      });
      assert.equal(result.exitCode, 0, result.stderrTail);
      const env = JSON.parse(result.stdoutTail) as Record<string, string>;
      assert.doesNotMatch(result.stdoutTail, /do-not-leak-me|secret@db/);
      // bubblewrap sets PWD to the job folder; nothing else is added.
      assert.deepEqual(Object.keys(env).sort(), ['KILN_JOB_FLAG', 'LANG', 'PATH', 'PWD']);
      assert.deepEqual(result.record.envKeys, ['KILN_JOB_FLAG', 'LANG', 'PATH']);
    } finally {
      delete process.env.S3_SECRET_ACCESS_KEY;
      delete process.env.DATABASE_URL;
    }
  });

  it('shows an allowlist: its own folders, the system read-only, not other jobs, /root, /home or /run', async (t) => {
    const jobDir = await newJobDir();
    const other = await newJobDir();
    await writeFile(path.join(other, 'model.pt2'), 'another tenant’s model', { mode: 0o444 });
    const leak = path.join('/tmp', `${uniqueMarker()}.txt`);
    const result = await run(
      t,
      [
        'import os, json',
        'def probe(p):',
        '    try:',
        '        return sorted(os.listdir(p))',
        '    except OSError as e:',
        '        return type(e).__name__',
        'def write(p):',
        '    try:',
        '        open(p, "w").write("x"); return "ok"',
        '    except OSError as e:',
        '        return type(e).__name__',
        `jobs = ${JSON.stringify(workRoot)}`,
        'print(json.dumps({',
        '  "root": probe("/"), "jobs": probe(jobs), "job": probe(os.getcwd()),',
        `  "other": probe(${JSON.stringify(other)}), "home": probe("/home"), "roothome": probe("/root"),`,
        '  "run": probe("/run"), "var": probe("/var"), "shm": probe("/dev/shm"),',
        '  "writeTmp": write(os.path.join(os.environ["TMPDIR"], "scratch")),',
        `  "writeHostTmp": write(${JSON.stringify(leak)}), "writeJob": write("job-file"),`,
        '  "writeUsr": write("/usr/kiln"), "writeEtc": write("/etc/kiln"),',
        '}))',
      ].join('\n'),
      { jobDir, writable: [path.join(jobDir, 'home'), path.join(jobDir, 'tmp')] },
    );
    assert.equal(result.exitCode, 0, result.stderrTail);
    const seen = JSON.parse(result.stdoutTail) as Record<string, unknown>;
    assert.deepEqual(seen.root, ['bin', 'dev', 'etc', 'lib', 'lib64', 'proc', 'sbin', 'tmp', 'usr', 'var']);
    assert.deepEqual(seen.jobs, [path.basename(jobDir)], 'only its own job folder, no sibling');
    assert.deepEqual(seen.job, ['home', 'tmp'], 'its folders only (not .sandbox/)');
    assert.equal(seen.other, 'FileNotFoundError');
    for (const key of ['home', 'roothome', 'run']) assert.equal(seen[key], 'FileNotFoundError', key);
    assert.deepEqual(seen.var, ['tmp']);
    assert.deepEqual(seen.shm, []);
    assert.equal(seen.writeTmp, 'ok');
    assert.equal(await readFile(path.join(jobDir, 'tmp', 'scratch'), 'utf8'), 'x');
    assert.equal(seen.writeHostTmp, 'ok', '/tmp inside is a private tmpfs');
    assert.equal(existsSync(leak), false, 'a file the job wrote to its /tmp must not reach the host /tmp');
    for (const key of ['writeUsr', 'writeEtc']) assert.equal(seen[key], 'OSError', key);
    // Its folder is a read-only skeleton (here under the private /tmp, so the write may land there): the host's
    // job folder never gets the file. The worker's self-test checks EROFS on the real jobs folder.
    assert.equal(existsSync(path.join(jobDir, 'job-file')), false);
    assert.equal(result.record.filesystem, 'allowlist');
  });

  it('has its own pid namespace: sees only its own processes', async (t) => {
    const result = await run(
      t,
      'import os; print(sorted(int(p) for p in os.listdir("/proc") if p.isdigit()), os.getpid())',
    );
    assert.equal(result.exitCode, 0, result.stderrTail);
    // bubblewrap's init (1) and the job itself (2).
    assert.equal(result.stdoutTail.trim(), '[1, 2] 2');
  });

  it('has RLIMIT_CORE 0 and its RLIMIT_NOFILE', async (t) => {
    const result = await run(
      t,
      'import resource as r; print(r.getrlimit(r.RLIMIT_CORE), r.getrlimit(r.RLIMIT_NOFILE))',
      { nofile: 1024 },
    );
    assert.equal(result.stdoutTail.trim(), '(0, 0) (1024, 1024)');
  });
});

describe('runSandboxed: limits and endings', () => {
  it('passes exit codes through and reports a crash signal', async (t) => {
    const exit = await run(t, 'import sys; sys.exit(7)');
    assert.equal(exit.exitCode, 7);
    assert.equal(exit.signal, null);
    const crash = await run(t, 'import ctypes; ctypes.string_at(0)');
    assert.equal(crash.exitCode, null);
    assert.equal(crash.signal, 'SIGSEGV');
    assert.equal(crash.oomKilled, false);
  });

  it('kills a job that allocates beyond its memory limit and says it was the memory limit', async (t) => {
    const result = await run(t, 'x = b"x" * (512 << 20); print("survived", len(x))', {
      memoryBytes: 64 * 1024 * 1024,
    });
    assert.doesNotMatch(result.stdoutTail, /survived/);
    assert.equal(result.oomKilled, true, `exit ${result.exitCode} ${result.signal}: ${result.stderrTail}`);
    assert.equal(result.signal, 'SIGKILL');
    assert.ok(result.memoryPeakBytes !== null && result.memoryPeakBytes <= 64 * 1024 * 1024);
  });

  it('refuses forks past its pids limit (a fork bomb cannot take the host down)', async (t) => {
    const result = await run(
      t,
      [
        'import os, signal',
        'kids, err = [], None',
        'for _ in range(200):',
        '    try:',
        '        pid = os.fork()',
        '    except OSError as e:',
        '        err = e.errno; break',
        '    if pid == 0:',
        '        signal.pause(); os._exit(0)',
        '    kids.append(pid)',
        'for k in kids: os.kill(k, 9); os.waitpid(k, 0)',
        'import errno; print(len(kids), errno.errorcode.get(err))',
      ].join('\n'),
      { pidsLimit: 32 },
    );
    assert.equal(result.exitCode, 0, result.stderrTail);
    const [forked, error] = result.stdoutTail.trim().split(' ');
    assert.equal(error, 'EAGAIN');
    assert.ok(Number(forked) < 32, `forked ${forked} with a limit of 32`);
    assert.ok((result.cgroupStats?.pidsRefused ?? 0) > 0);
    assert.equal(result.record.pidsLimit, 32);
  });

  it('enforces a CPU quota when asked (the kernel throttles the job)', async (t) => {
    const host = await requireFullSandbox(t);
    const cpu =
      host?.cgroups && (host.cgroups.version === 1 ? host.cgroups.cpu : host.cgroups.controllers.includes('cpu'));
    if (!cpu) {
      t.skip('this host has no cgroup cpu controller for job cgroups (a quota is optional; memory and pids are not)');
      return;
    }
    // Busy for 600 ms of wall time on a fifth of a core: several 100 ms periods end throttled.
    const result = await run(t, 'import time\nt = time.time()\nwhile time.time() - t < 0.6: pass', { cpus: 0.2 });
    assert.equal(result.exitCode, 0, result.stderrTail);
    assert.equal(result.record.cpuLimit, 0.2);
    assert.ok((result.cgroupStats?.cpuThrottled ?? 0) > 0, JSON.stringify(result.cgroupStats));
  });

  it('kills the whole process tree on timeout (child and grandchild)', async (t) => {
    const marker = uniqueMarker();
    const result = await run(
      t,
      `import subprocess, sys, time\nsubprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "${marker}"])\ntime.sleep(60)`,
      { timeoutMs: 1_000 },
    );
    assert.equal(result.timedOut, true);
    assert.equal(result.cancelled, false);
    assert.deepEqual(await processesWith(marker), []);
  });

  it('kills a grandchild that escaped the process group (setsid) when the job ends', async (t) => {
    const marker = uniqueMarker();
    const result = await run(
      t,
      [
        'import subprocess, sys',
        `subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", ${JSON.stringify(marker)}], start_new_session=True)`,
        'print("spawned", flush=True)',
      ].join('\n'),
    );
    assert.equal(result.exitCode, 0, result.stderrTail);
    assert.deepEqual(await processesWith(marker), []);
  });

  it('stops on abort (AbortSignal), and does not start when already aborted', async (t) => {
    const marker = uniqueMarker();
    const controller = new AbortController();
    const pending = run(t, `import time; print("started", flush=True); time.sleep(60)  # ${marker}`, {
      signal: controller.signal,
      onStdoutLine: () => controller.abort(),
    });
    const result = await pending;
    assert.equal(result.cancelled, true);
    assert.equal(result.timedOut, false);
    assert.deepEqual(await processesWith(marker), []);

    const pre = await run(t, 'print("ran")', { signal: AbortSignal.abort() });
    assert.equal(pre.cancelled, true);
    assert.equal(pre.exitCode, null);
    assert.equal(pre.stdoutTail, '');
  });

  it('removes its cgroups afterwards', async (t) => {
    const result = await run(t, 'print("hi")');
    assert.equal(result.exitCode, 0);
    assert.ok(result.cgroupPaths.length >= 2, 'memory and pids');
    for (const dir of result.cgroupPaths) assert.equal(existsSync(dir), false, `${dir} still exists`);
  });

  it('streams lines to callbacks and keeps capped tails', async (t) => {
    const out: string[] = [];
    const err: string[] = [];
    const lines = 100_000;
    const result = await run(
      t,
      `import sys\nfor i in range(${lines}):\n    print(f"out {i}")\n    print(f"err {i}", file=sys.stderr)\nsys.stdout.write("no newline")`,
      { onStdoutLine: (l) => out.push(l), onStderrLine: (l) => err.push(l), tailChars: 64 * 1024 },
    );
    assert.equal(result.exitCode, 0);
    assert.equal(out.length, lines + 1);
    assert.equal(err.length, lines);
    assert.equal(out[lines - 1], `out ${lines - 1}`);
    assert.equal(out[lines], 'no newline');
    assert.equal(result.stdoutTail.length, 64 * 1024);
    assert.ok(result.stdoutTail.endsWith(`out ${lines - 1}\nno newline`));
    assert.ok(result.stderrTail.endsWith(`err ${lines - 1}\n`));
  });
});

describe('runSandboxed: a host without every wall', () => {
  const weakened = (host: SandboxHost): SandboxHost => ({
    ...host,
    tools: { ...host.tools, bwrap: null },
    cgroups: null,
    notes: ['weakened on purpose (test)'],
  });

  it('refuses to run anything unless the worker opted out', async (t) => {
    const host = await requireFullSandbox(t);
    const jobDir = await newJobDir();
    const marker = path.join(jobDir, 'tmp', 'ran');
    await mkdir(path.dirname(marker), { recursive: true });
    await assert.rejects(
      run(t, `open(${JSON.stringify(marker)}, "w").write("ran")`, { jobDir, host: weakened(host!) }),
      (err: unknown) =>
        err instanceof SandboxUnavailableError &&
        err.missing.map((m) => m.wall).join(',') ===
          'network,pid-namespace,filesystem-allowlist,memory-limit,pids-limit',
    );
    assert.equal(existsSync(marker), false, 'nothing ran');
  });

  it('with insecure-local runs with what is there and records what is missing', async (t) => {
    const host = await requireFullSandbox(t);
    const result = await run(t, 'import os; print(os.getuid(), len(os.listdir("/proc")) > 10)', {
      host: weakened(host!),
      insecureLocal: true,
    });
    assert.equal(result.exitCode, 0, result.stderrTail);
    assert.equal(result.stdoutTail.trim(), '65534 True', 'still nobody, but it sees the host’s processes');
    assert.equal(result.record.mode, 'insecure-local');
    assert.equal(result.record.network, 'host');
    assert.deepEqual(
      result.record.missing.map((m) => m.wall),
      ['network', 'pid-namespace', 'filesystem-allowlist', 'memory-limit', 'pids-limit'],
    );
  });
});
