import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  planSandbox,
  probeSandboxCapabilities,
  runSandboxed,
  type RunSandboxedOptions,
  type SandboxCapabilities,
  sandboxCommandLine,
} from './sandbox.js';

// Real processes, no mocks. Every test runs under whatever this host allows; on the dev machine (root,
// cgroup v1, unshare, setpriv) that is the full sandbox, and the assertions say what each layer must do.

let workRoot: string;
let caps: SandboxCapabilities;

before(async () => {
  caps = await probeSandboxCapabilities();
  workRoot = await mkdtemp(path.join(os.tmpdir(), 'kiln-sandbox-spec-'));
  // Searchable but not listable by the sandbox user, like a worker's jobs folder.
  await chmod(workRoot, 0o711);
});

after(async () => {
  await rm(workRoot, { recursive: true, force: true });
});

async function newJobDir(): Promise<string> {
  return mkdtemp(path.join(workRoot, 'job-'));
}

async function run(
  script: string,
  extra: Partial<RunSandboxedOptions> = {},
): Promise<Awaited<ReturnType<typeof runSandboxed>>> {
  const jobDir = extra.jobDir ?? (await newJobDir());
  return runSandboxed({
    argv: ['/usr/bin/python3', '-c', script],
    cwd: jobDir,
    env: {},
    timeoutMs: 4_000,
    memoryBytes: 256 * 1024 * 1024,
    killGraceMs: 200,
    ...extra,
    jobDir,
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

describe('probeSandboxCapabilities', () => {
  it('finds what this host allows and caches it', async () => {
    assert.equal(await probeSandboxCapabilities(), caps);
    if (process.getuid?.() === 0) {
      // The dev machine: root with full capabilities.
      assert.equal(caps.namespaces?.mode, 'privileged');
      assert.equal(caps.dropTo?.uid, 65534);
      assert.ok(caps.setprivHardening.includes('--no-new-privs'));
    }
  });

  it('reports the plan it will apply without running anything', async () => {
    const jobDir = await newJobDir();
    const applied = await planSandbox(
      { argv: ['/usr/bin/true'], cwd: jobDir, env: {}, timeoutMs: 1000, memoryBytes: 1 << 28, jobDir },
      caps,
    );
    assert.equal(applied.timeoutMs, 1000);
    assert.equal(applied.environment, 'clean');
    assert.deepEqual(applied.envKeys, ['HOME', 'LANG', 'PATH', 'TMPDIR', 'TORCHINDUCTOR_CACHE_DIR']);
    if (caps.namespaces) assert.equal(applied.network, 'none');
  });
});

describe('sandboxCommandLine', () => {
  it('is the chain runSandboxed spawns (minus cgroups): a GPU job keeps /dev and gets no RLIMIT_AS', async () => {
    const jobDir = await newJobDir();
    const full: SandboxCapabilities = {
      ...caps,
      isRoot: true,
      tools: {
        sh: '/bin/sh',
        unshare: '/usr/bin/unshare',
        setpriv: '/usr/bin/setpriv',
        prlimit: '/usr/bin/prlimit',
        mount: '/usr/bin/mount',
      },
      namespaces: { mode: 'privileged', pidAndMount: true },
      dropTo: { user: 'nobody', uid: 65534, gid: 65534 },
      setprivHardening: ['--no-new-privs'],
      cgroups: null,
    };
    const { argv, env, applied } = await sandboxCommandLine(
      {
        argv: ['/usr/bin/python3', '-c', 'pass'],
        cwd: jobDir,
        jobDir,
        env: { CUDA_VISIBLE_DEVICES: '3', CUDA_DEVICE_ORDER: 'PCI_BUS_ID' },
        timeoutMs: 1000,
        memoryBytes: 1 << 30,
        hidePaths: [workRoot],
        allowRlimitAs: false,
      },
      full,
    );
    assert.deepEqual(argv.slice(0, 4), ['/usr/bin/setpriv', '--pdeathsig', 'KILL', '--']);
    assert.ok(argv.includes('--mount-proc') && argv.includes('--net'));
    assert.ok(!argv.some((a) => a.startsWith('--as=')), 'CUDA reserves huge virtual ranges: no RLIMIT_AS');
    // (the jobs folder is under /tmp here, which is hidden as a whole)
    for (const p of ['/dev/shm', '/tmp', '/var/tmp']) assert.ok(applied.privateMounts.includes(p), p);
    assert.ok(!applied.privateMounts.includes('/dev'), '/dev/nvidia* stay visible');
    assert.deepEqual(argv.slice(-8, -3), ['--reuid=65534', '--regid=65534', '--clear-groups', '--no-new-privs', '--']);
    assert.equal(env.CUDA_VISIBLE_DEVICES, '3');
    assert.equal(applied.user, 'nobody');
  });
});

describe('runSandboxed (full sandbox on this host)', () => {
  it('has no network: connecting to 127.0.0.1:5432 (PostgreSQL on the host) fails', async () => {
    const result = await run(
      [
        'import socket, errno',
        's = socket.socket()',
        's.settimeout(2)',
        'try:',
        '    s.connect(("127.0.0.1", 5432)); print("CONNECTED")',
        'except OSError as e:',
        '    print("ERRNO", errno.errorcode.get(e.errno, e.errno))',
      ].join('\n'),
    );
    assert.equal(result.exitCode, 0, result.stderrTail);
    if (caps.namespaces) {
      assert.equal(result.applied.network, 'none');
      // Unreachable, not refused: there is no route at all (loopback is down in the empty namespace).
      assert.match(result.stdoutTail, /ERRNO ENETUNREACH/);
    }
    assert.doesNotMatch(result.stdoutTail, /CONNECTED/);
  });

  it('runs as nobody without capabilities or new privileges when started as root', async () => {
    const result = await run(
      'import os; s = open("/proc/self/status").read(); print(os.getuid(), os.getgid(), os.getgroups()); ' +
        'print([l for l in s.splitlines() if l.startswith(("CapEff", "CapBnd", "NoNewPrivs"))])',
    );
    assert.equal(result.exitCode, 0, result.stderrTail);
    if (caps.dropTo) {
      assert.equal(result.applied.user, 'nobody');
      assert.match(result.stdoutTail, /^65534 65534 \[\]/);
      assert.match(result.stdoutTail, /CapEff:\\t0000000000000000/);
      assert.match(result.stdoutTail, /CapBnd:\\t0000000000000000/);
      assert.match(result.stdoutTail, /NoNewPrivs:\\t1/);
    } else {
      assert.equal(result.applied.user, 'same');
    }
  });

  it('gives the child a clean environment: no worker secrets, defaults inside the job folder', async () => {
    process.env.S3_SECRET_ACCESS_KEY = 'do-not-leak-me';
    process.env.DATABASE_URL = 'postgres://secret@db/kiln';
    try {
      const jobDir = await newJobDir();
      const result = await run('import os, json; print(json.dumps(dict(os.environ)))', {
        jobDir,
        env: { KILN_JOB_FLAG: '1' },
      });
      assert.equal(result.exitCode, 0, result.stderrTail);
      const env = JSON.parse(result.stdoutTail) as Record<string, string>;
      assert.equal(env.S3_SECRET_ACCESS_KEY, undefined);
      assert.equal(env.DATABASE_URL, undefined);
      assert.doesNotMatch(result.stdoutTail, /do-not-leak-me|secret@db/);
      assert.equal(env.KILN_JOB_FLAG, '1');
      assert.equal(env.TMPDIR, path.join(jobDir, 'tmp'));
      assert.equal(env.HOME, path.join(jobDir, 'home'));
      assert.equal(env.TORCHINDUCTOR_CACHE_DIR, path.join(jobDir, 'cache'));
      assert.equal(env.LANG, 'C.UTF-8');
      // sh may add PWD/OLDPWD on the way; nothing else may appear.
      const unexpected = Object.keys(env).filter(
        (k) =>
          !['KILN_JOB_FLAG', 'TMPDIR', 'HOME', 'TORCHINDUCTOR_CACHE_DIR', 'LANG', 'PATH', 'PWD', 'OLDPWD'].includes(k),
      );
      assert.deepEqual(unexpected, []);
      assert.ok(existsSync(path.join(jobDir, 'tmp')));
    } finally {
      delete process.env.S3_SECRET_ACCESS_KEY;
      delete process.env.DATABASE_URL;
    }
  });

  it('lets the job write its own folder but gives it private /tmp and /dev/shm', async () => {
    const jobDir = await newJobDir();
    const leak = path.join('/tmp', `${uniqueMarker()}.txt`);
    const result = await run(
      [
        'import os',
        `open(os.path.join(os.environ["TMPDIR"], "scratch"), "w").write("ok")`,
        `open(${JSON.stringify(leak)}, "w").write("leak")`,
        'print(sorted(os.listdir("/dev/shm")))',
      ].join('\n'),
      { jobDir },
    );
    assert.equal(result.exitCode, 0, result.stderrTail);
    assert.equal(await readFile(path.join(jobDir, 'tmp', 'scratch'), 'utf8'), 'ok');
    if (result.applied.privateMounts.includes('/tmp')) {
      assert.equal(existsSync(leak), false, 'a file the job wrote to /tmp must not reach the host /tmp');
      assert.match(result.stdoutTail, /^\[\]/m);
    }
    await rm(leak, { force: true });
  });

  it('hides other jobs’ folders (hidePaths) while the job folder stays reachable', async () => {
    const jobsRoot = await mkdtemp(path.join(workRoot, 'jobs-'));
    await chmod(jobsRoot, 0o755);
    const other = path.join(jobsRoot, 'job-other');
    await mkdir(other);
    await writeFile(path.join(other, 'model.pt2'), 'another tenant’s model');
    const jobDir = path.join(jobsRoot, 'job-mine');
    await mkdir(jobDir);
    await writeFile(path.join(jobDir, 'job.json'), '{"mine":true}');
    const result = await run(
      `import os; print(os.listdir(${JSON.stringify(jobsRoot)})); print(open("job.json").read())`,
      { jobDir, hidePaths: [jobsRoot] },
    );
    assert.equal(result.exitCode, 0, result.stderrTail);
    assert.match(result.stdoutTail, /\{"mine":true\}/);
    if (caps.namespaces?.pidAndMount) assert.match(result.stdoutTail, /^\['job-mine'\]$/m);
  });

  it('passes exit codes through and reports a crash signal', async () => {
    const exit = await run('import sys; sys.exit(7)');
    assert.equal(exit.exitCode, 7);
    assert.equal(exit.signal, null);
    const crash = await run('import ctypes; ctypes.string_at(0)');
    assert.equal(crash.exitCode, null);
    assert.equal(crash.signal, 'SIGSEGV');
    assert.equal(crash.oomKilled, false);
  });

  it('kills the whole process tree on timeout (child and grandchild)', async () => {
    const marker = uniqueMarker();
    const started = Date.now();
    const result = await runSandboxed({
      argv: ['/bin/sh', '-c', `/usr/bin/python3 -c 'import time; time.sleep(60)' ${marker} & sleep 60; echo never`],
      cwd: workRoot,
      jobDir: await newJobDir(),
      env: {},
      timeoutMs: 500,
      memoryBytes: 256 * 1024 * 1024,
      killGraceMs: 300,
    });
    assert.equal(result.timedOut, true);
    assert.equal(result.cancelled, false);
    // Inside a pid namespace the command is the namespace's init, which ignores SIGTERM unless it handles
    // it: its children die on TERM, the init itself on the KILL that follows the grace period.
    assert.ok(Date.now() - started < 3_000);
    assert.deepEqual(await processesWith(marker), []);
  });

  it('kills a grandchild that escaped the process group (setsid) when the job ends', async () => {
    const marker = uniqueMarker();
    const result = await run(
      [
        'import os, subprocess, sys',
        `subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", ${JSON.stringify(marker)}], start_new_session=True)`,
        'print("spawned", flush=True)',
      ].join('\n'),
    );
    assert.equal(result.exitCode, 0, result.stderrTail);
    if (caps.namespaces?.pidAndMount || caps.cgroups) assert.deepEqual(await processesWith(marker), []);
  });

  it('stops on abort (AbortSignal), and does not start when already aborted', async () => {
    const marker = uniqueMarker();
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 300);
    const result = await run(`import time; time.sleep(60)  # ${marker}`, { signal: controller.signal });
    assert.equal(result.cancelled, true);
    assert.equal(result.timedOut, false);
    assert.deepEqual(await processesWith(marker), []);

    const pre = await run('print("ran")', { signal: AbortSignal.abort() });
    assert.equal(pre.cancelled, true);
    assert.equal(pre.exitCode, null);
    assert.equal(pre.stdoutTail, '');
  });

  it('kills a job that allocates beyond its memory limit and says it was the memory limit', async () => {
    const result = await run('x = b"x" * (512 << 20); print("survived", len(x))', {
      memoryBytes: 64 * 1024 * 1024,
    });
    assert.doesNotMatch(result.stdoutTail, /survived/);
    assert.equal(result.oomKilled, true, `exit ${result.exitCode} ${result.signal}: ${result.stderrTail}`);
    if (caps.cgroups) {
      assert.equal(result.signal, 'SIGKILL');
      assert.ok(result.memoryPeakBytes !== null && result.memoryPeakBytes <= 64 * 1024 * 1024);
    }
  });

  it('enforces a CPU quota when asked (cgroup cpu controller)', async () => {
    // Busy for 600 ms of wall time; with a fifth of a core it gets about 120 ms of CPU.
    const result = await run(
      'import time\nt = time.time()\nwhile time.time() - t < 0.6: pass\nprint(round(time.process_time(), 3))',
      { cpus: 0.2 },
    );
    assert.equal(result.exitCode, 0, result.stderrTail);
    if (result.applied.cpuLimit !== null) {
      assert.equal(result.applied.cpuLimit, 0.2);
      assert.ok(Number(result.stdoutTail) < 0.35, `used ${result.stdoutTail.trim()} s of CPU`);
    }
  });

  it('removes its cgroups afterwards', async () => {
    const result = await run('print("hi")');
    assert.equal(result.exitCode, 0);
    if (caps.cgroups) {
      assert.ok(result.cgroupPaths.length > 0);
      assert.equal(result.applied.memoryLimit, caps.cgroups.version === 1 ? 'cgroup-v1' : 'cgroup-v2');
    }
    for (const dir of result.cgroupPaths) assert.equal(existsSync(dir), false, `${dir} still exists`);
  });

  it('streams lines to callbacks and keeps capped tails', async () => {
    const out: string[] = [];
    const err: string[] = [];
    const lines = 100_000;
    const result = await run(
      `import sys\nfor i in range(${lines}):\n    print(f"out {i}")\n    print(f"err {i}", file=sys.stderr)\nsys.stdout.write("no newline")`,
      { onStdoutLine: (l) => out.push(l), onStderrLine: (l) => err.push(l), tailChars: 64 * 1024 },
    );
    assert.equal(result.exitCode, 0);
    assert.equal(out.length, lines + 1);
    assert.equal(err.length, lines);
    assert.equal(out[0], 'out 0');
    assert.equal(out[lines - 1], `out ${lines - 1}`);
    assert.equal(out[lines], 'no newline');
    assert.equal(err[lines - 1], `err ${lines - 1}`);
    assert.equal(result.stdoutTail.length, 64 * 1024);
    assert.ok(result.stdoutTail.endsWith(`out ${lines - 1}\nno newline`));
    assert.ok(result.stderrTail.length <= 64 * 1024);
    assert.ok(result.stderrTail.endsWith(`err ${lines - 1}\n`));
  });
});

describe('runSandboxed (degraded: no namespaces, no cgroups, no privilege drop)', () => {
  const degraded = (): SandboxCapabilities => ({
    ...caps,
    namespaces: null,
    dropTo: null,
    cgroups: null,
    setprivHardening: caps.setprivHardening.filter((f) => f === '--no-new-privs'),
    notes: ['degraded on purpose (test)'],
  });

  it('reports what it could not enforce', async () => {
    const result = await run('print("ok")', { capabilities: degraded() });
    assert.equal(result.exitCode, 0);
    assert.equal(result.applied.network, 'host');
    assert.equal(result.applied.user, 'same');
    assert.equal(result.applied.processes, 'host');
    assert.deepEqual(result.applied.privateMounts, []);
    assert.equal(result.applied.memoryLimit, caps.tools.prlimit ? 'rlimit-as' : 'none');
    assert.ok(result.applied.notes.includes('degraded on purpose (test)'));
  });

  it('still kills the process tree on timeout through the process group', async () => {
    const marker = uniqueMarker();
    const result = await runSandboxed({
      argv: ['/bin/sh', '-c', `/usr/bin/python3 -c 'import time; time.sleep(60)' ${marker} & sleep 60`],
      cwd: workRoot,
      jobDir: await newJobDir(),
      env: {},
      timeoutMs: 400,
      memoryBytes: 256 * 1024 * 1024,
      killGraceMs: 200,
      capabilities: degraded(),
    });
    assert.equal(result.timedOut, true);
    assert.deepEqual(await processesWith(marker), []);
  });

  it('falls back to RLIMIT_AS and recognises the failed allocation as out-of-memory', async () => {
    if (!caps.tools.prlimit) return;
    const result = await run('x = b"x" * (1 << 30); print("survived")', {
      memoryBytes: 256 * 1024 * 1024,
      capabilities: degraded(),
    });
    assert.equal(result.applied.memoryLimit, 'rlimit-as');
    assert.equal(result.applied.rlimits.as, 256 * 1024 * 1024);
    assert.doesNotMatch(result.stdoutTail, /survived/);
    assert.equal(result.exitCode, 1);
    assert.equal(result.oomKilled, true);
  });
});
