import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  AARCH64_TARGETS,
  AARCH64_TORCH_BUILD,
  CPU_TARGETS,
  CUDA_TARGETS,
  TARGETS,
  type TargetDefinition,
  taskQueueFor,
} from '@kiln/targets';
import {
  buildableTargets,
  buildQueues,
  type CommandResult,
  type CommandRunner,
  type HostProbe,
  type SandboxedPythonCheck,
  parseCpuinfo,
  parseLddVersion,
  parseNvidiaSmiCsv,
  parseToolVersion,
  probeHost,
  readCrossToolchain,
} from './host-probe.js';

// Probe outputs recorded on real machines (fixtures/): this dev machine's /proc/cpuinfo (AVX-512 Xeon),
// g++/getconf/ldd of Debian 12, nvidia-smi of the H100 GPU machine; plus an i7-8650U laptop (AVX2, no
// AVX-512), an SSE4.2-only Westmere Xeon X5670 and a Graviton2 (aarch64) written after real ones.
const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures');
const fixture = (name: string): string => readFileSync(path.join(FIXTURES, name), 'utf8');
const cpuinfo = (name: string): string => path.join(FIXTURES, 'cpuinfo', name);

const ok = (stdout: string): CommandResult => ({ code: 0, stdout, stderr: '', error: null });

interface FakeHost {
  torch?: CommandResult;
  gxx?: string;
  nvidiaSmi?: CommandResult | null;
  compilers?: Record<string, string>;
  sandboxCheck?: (pythonPath: string) => Promise<SandboxedPythonCheck>;
}

/** Answers each probe command from the recorded outputs; records what was asked. */
function fakeHost(host: FakeHost = {}): {
  run: CommandRunner;
  findExecutable: (name: string) => Promise<string | null>;
  calls: string[];
} {
  const calls: string[] = [];
  const executables: Record<string, string> = { ...(host.compilers ?? { 'g++': '/usr/bin/g++' }) };
  if (host.nvidiaSmi) executables['nvidia-smi'] = '/usr/bin/nvidia-smi';
  const run: CommandRunner = async (file, args, options) => {
    calls.push([path.basename(file), ...args].join(' '));
    assert.deepEqual(Object.keys(options.env).sort(), ['LANG', 'PATH'], 'probe commands get a minimal env');
    const name = path.basename(file);
    if (name === 'python') return host.torch ?? ok(fixture('commands/python-torch-2.13-cpu.txt'));
    if (name === 'getconf') return ok(fixture('commands/getconf-glibc-debian12.txt'));
    if (name === 'ldd') return ok(fixture('commands/ldd-version-debian12.txt'));
    if (name === 'nvidia-smi' && host.nvidiaSmi) return host.nvidiaSmi;
    if (args[0] === '--version' && Object.values(executables).includes(file)) {
      return ok(fixture(host.gxx ?? 'commands/gxx-version-debian12.txt'));
    }
    return { code: null, stdout: '', stderr: '', error: 'ENOENT' };
  };
  return { run, findExecutable: async (name) => executables[name] ?? null, calls };
}

async function probe(
  cpu: string,
  host: FakeHost = {},
  nodeArch = 'x64',
  x86LevelCap: 1 | 2 | 3 | 4 | null = null,
): Promise<HostProbe> {
  const fake = fakeHost(host);
  return probeHost({
    x86LevelCap,
    pythonPath: '/srv/kiln/venv/bin/python',
    cpuinfoPath: cpuinfo(cpu),
    run: fake.run,
    findExecutable: fake.findExecutable,
    nodeArch,
    platform: 'linux',
    sandboxCheck: host.sandboxCheck ?? false,
  });
}

const ids = (decisions: { targetId: string }[]): string[] => decisions.map((d) => d.targetId);

describe('probeHost (recorded outputs)', () => {
  it('reads a recorded AVX-512 Xeon: x86-64-v4, torch, g++, glibc, no GPU', async () => {
    const p = await probe('xeon-avx512.txt');
    assert.equal(p.os, 'linux');
    assert.equal(p.arch, 'x86_64');
    assert.equal(p.cpuModel, 'Intel(R) Xeon(R) Processor');
    assert.equal(p.x86Level, 4);
    assert.equal(p.logicalCpus, 2);
    assert.ok(p.cpuFlags.includes('avx512f'));
    assert.equal(p.toolchain.python, '3.11.7');
    assert.equal(p.toolchain.torch, '2.13.0+cpu');
    assert.deepEqual(p.toolchain.compilers['g++'], {
      path: '/usr/bin/g++',
      versionLine: 'g++ (Debian 12.2.0-14+deb12u1) 12.2.0',
      version: '12.2.0',
    });
    assert.equal(p.toolchain.glibc, '2.36');
    assert.deepEqual(p.gpus, []);
    assert.deepEqual(p.problems, []);
  });

  it('reads an i7-8650U laptop as x86-64-v3 and a Westmere Xeon as v2', async () => {
    const laptop = await probe('i7-8650u-avx2.txt');
    assert.equal(laptop.cpuModel, 'Intel(R) Core(TM) i7-8650U CPU @ 1.90GHz');
    assert.equal(laptop.x86Level, 3);
    assert.equal(laptop.logicalCpus, 8);
    const old = await probe('xeon-x5670-sse42.txt');
    assert.equal(old.cpuModel, 'Intel(R) Xeon(R) CPU X5670 @ 2.93GHz');
    assert.equal(old.x86Level, 2);
  });

  it('KILN_X86_LEVEL_CAP makes an AVX-512 host probe as an older CPU', async () => {
    const v3 = await probe('xeon-avx512.txt', {}, 'x64', 3);
    assert.equal(v3.x86Level, 3);
    assert.equal(v3.x86LevelCap, 3);
    assert.ok(!v3.cpuFlags.some((f) => f.startsWith('avx512')), 'no AVX-512 flag left');
    assert.ok(v3.cpuFlags.includes('avx2'));
    const v2 = await probe('xeon-avx512.txt', {}, 'x64', 2);
    assert.equal(v2.x86Level, 2);
    assert.ok(!v2.cpuFlags.some((f) => f.startsWith('avx')), 'no AVX flag left');
    // A cap above what the CPU has changes nothing.
    const laptop = await probe('i7-8650u-avx2.txt', {}, 'x64', 4);
    assert.equal(laptop.x86Level, 3);
    assert.equal((await probe('xeon-avx512.txt')).x86LevelCap, null);
  });

  it('reads GPUs from nvidia-smi (recorded on the H100 machine)', async () => {
    const p = await probe('xeon-avx512.txt', { nvidiaSmi: ok(fixture('commands/nvidia-smi-h100.csv')) });
    assert.deepEqual(p.gpus, [
      { name: 'NVIDIA H100 80GB HBM3', computeCapability: '9.0', driverVersion: '580.159.04', index: 0 },
    ]);
  });

  it('reports what it could not find out instead of failing', async () => {
    const p = await probe('xeon-avx512.txt', {
      torch: { code: 1, stdout: '3.11.2\n', stderr: fixture('commands/python-no-torch-stderr.txt'), error: null },
      nvidiaSmi: { code: 9, stdout: fixture('commands/nvidia-smi-no-driver.txt'), stderr: '', error: null },
      compilers: {},
    });
    assert.equal(p.toolchain.python, '3.11.2');
    assert.equal(p.toolchain.torch, null);
    assert.equal(p.toolchain.compilers['g++'].path, null);
    assert.deepEqual(p.gpus, []);
    assert.equal(p.problems.length, 3);
    assert.match(p.problems.join('\n'), /No module named 'torch'/);
    assert.match(p.problems.join('\n'), /nvidia-smi failed: NVIDIA-SMI has failed/);
    assert.match(p.problems.join('\n'), /C\+\+ compiler g\+\+ is not on the sandbox PATH/);
  });

  it('has no x86 level on an aarch64 host', async () => {
    const p = await probe('graviton2-aarch64.txt', {}, 'arm64');
    assert.equal(p.arch, 'aarch64');
    assert.equal(p.x86Level, null);
    assert.equal(p.cpuModel, 'ARM implementer 0x41 part 0xd0c');
    assert.ok(p.cpuFlags.includes('asimd'));
  });
});

describe('buildableTargets', () => {
  it('an AVX-512 host with the recipe’s torch and g++ builds every x86 target', async () => {
    const { buildable, rejected } = buildableTargets(await probe('xeon-avx512.txt'), CPU_TARGETS);
    assert.deepEqual(ids(buildable), ['linux-x86_64-v2', 'linux-x86_64-v3', 'linux-x86_64-v4']);
    assert.deepEqual(rejected, []);
    assert.match(buildable[2].reason, /x86-64-v4 ≥ v4.*torch 2\.13\.0\+cpu.*g\+\+ 12\.2\.0 at \/usr\/bin\/g\+\+/);
  });

  it('an AVX-512 host capped at v3 serves v2 and v3 only, and says why not v4', async () => {
    const decisions = buildableTargets(await probe('xeon-avx512.txt', {}, 'x64', 3), CPU_TARGETS);
    assert.deepEqual(ids(decisions.buildable), ['linux-x86_64-v2', 'linux-x86_64-v3']);
    assert.match(decisions.rejected.find((r) => r.targetId === 'linux-x86_64-v4')?.reason ?? '', /below v4/);
  });

  it('an AVX2 laptop cannot build v4: it could compile it but not run it to verify', async () => {
    const { buildable, rejected } = buildableTargets(await probe('i7-8650u-avx2.txt'), CPU_TARGETS);
    assert.deepEqual(ids(buildable), ['linux-x86_64-v2', 'linux-x86_64-v3']);
    assert.deepEqual(ids(rejected), ['linux-x86_64-v4']);
    assert.match(rejected[0].reason, /x86-64-v3, below v4/);
  });

  it('an SSE4.2-only box builds v2 only', async () => {
    const { buildable, rejected } = buildableTargets(await probe('xeon-x5670-sse42.txt'), CPU_TARGETS);
    assert.deepEqual(ids(buildable), ['linux-x86_64-v2']);
    assert.deepEqual(ids(rejected), ['linux-x86_64-v3', 'linux-x86_64-v4']);
  });

  it('a host with another torch build serves nothing, and says why', async () => {
    const p = await probe('xeon-avx512.txt', { torch: ok(fixture('commands/python-torch-2.12-cpu.txt')) });
    const { buildable, rejected } = buildableTargets(p, CPU_TARGETS);
    assert.deepEqual(buildable, []);
    assert.equal(rejected.length, 3);
    for (const r of rejected)
      assert.match(r.reason, /host torch 2\.12\.1\+cpu differs from the recipe's 2\.13\.0\+cpu/);
  });

  it('a host without torch or compiler serves nothing', async () => {
    const p = await probe('xeon-avx512.txt', {
      torch: { code: 1, stdout: '3.11.2\n', stderr: 'ModuleNotFoundError', error: null },
      compilers: {},
    });
    const { buildable, rejected } = buildableTargets(p, CPU_TARGETS);
    assert.deepEqual(buildable, []);
    assert.match(rejected[0].reason, /torch is not importable.*; C\+\+ compiler g\+\+ not found/);
  });

  it('a Python the sandbox user cannot run serves nothing (e.g. a venv on a pyenv under /root)', async () => {
    const p = await probe('xeon-avx512.txt', {
      sandboxCheck: async () => ({
        ok: false,
        python: '3.11.2',
        torch: null,
        problem: "PermissionError: [Errno 13] Permission denied: '/srv/kiln/venv/bin/python'",
      }),
    });
    assert.match(
      p.problems.join('\n'),
      /the sandboxed driver cannot use \/srv\/kiln\/venv\/bin\/python: PermissionError/,
    );
    const { buildable, rejected } = buildableTargets(p, CPU_TARGETS);
    assert.deepEqual(buildable, []);
    assert.match(rejected[0].reason, /sandboxed driver cannot use the worker's Python: PermissionError/);
  });

  it('an aarch64 host serves no x86 target', async () => {
    const { buildable, rejected } = buildableTargets(await probe('graviton2-aarch64.txt', {}, 'arm64'), CPU_TARGETS);
    assert.deepEqual(buildable, []);
    assert.match(rejected[0].reason, /host is linux\/aarch64, target needs linux\/x86_64/);
  });

  it('honours restrictTo, and reports ids the catalog does not know', async () => {
    const { buildable, rejected } = buildableTargets(await probe('xeon-avx512.txt'), CPU_TARGETS, [
      'linux-x86_64-v3',
      'linux-x86_64-v9',
    ]);
    assert.deepEqual(ids(buildable), ['linux-x86_64-v3']);
    assert.deepEqual(
      rejected.map((r) => [r.targetId, r.reason]),
      [
        ['linux-x86_64-v2', 'not in this worker’s target list (KILN_WORKER_TARGETS)'],
        ['linux-x86_64-v4', 'not in this worker’s target list (KILN_WORKER_TARGETS)'],
        ['linux-x86_64-v9', 'unknown target id (not in the catalog)'],
      ],
    );
    // An empty list means "no restriction".
    assert.equal(buildableTargets(await probe('xeon-avx512.txt'), CPU_TARGETS, []).buildable.length, 3);
  });

  it('a GPU target needs a GPU of exactly its compute capability', async () => {
    const cpu = CPU_TARGETS[2];
    const sm90: TargetDefinition = {
      ...cpu,
      id: 'linux-x86_64-cuda-sm90',
      requires: { ...cpu.requires, x86Level: null, computeCapability: '9.0' },
      recipe: { ...cpu.recipe, targetId: 'linux-x86_64-cuda-sm90', device: 'cuda' },
    };
    const sm80: TargetDefinition = {
      ...sm90,
      id: 'linux-x86_64-cuda-sm80',
      requires: { ...sm90.requires, computeCapability: '8.0' },
    };
    const h100 = await probe('xeon-avx512.txt', { nvidiaSmi: ok(fixture('commands/nvidia-smi-h100.csv')) });
    const { buildable, rejected } = buildableTargets(h100, [sm90, sm80]);
    assert.deepEqual(ids(buildable), ['linux-x86_64-cuda-sm90']);
    assert.match(buildable[0].reason, /GPU NVIDIA H100 80GB HBM3 \(compute capability 9\.0\)/);
    assert.deepEqual(ids(rejected), ['linux-x86_64-cuda-sm80']);
    assert.match(rejected[0].reason, /needs a GPU of compute capability 8\.0, host has NVIDIA H100 80GB HBM3 \(9\.0\)/);

    const noGpu = buildableTargets(await probe('xeon-avx512.txt'), [sm90]);
    assert.match(noGpu.rejected[0].reason, /host has no GPU/);
  });
});

// The GPU build host, as recorded on the H100 machine (bench/cuda): its /proc/cpuinfo (16 vCPUs of an AVX-512
// Xeon), `nvidia-smi --query-gpu=name,compute_cap,driver_version,index`, torch 2.11.0+cu130 on Python 3.12.3 and
// Ubuntu 24.04's g++ 13.3 (the first lines of what the machine printed).
async function h100Host(nvidiaSmi = fixture('commands/nvidia-smi-h100-index.csv')): Promise<HostProbe> {
  return probe('h100-host-xeon.txt', {
    nvidiaSmi: ok(nvidiaSmi),
    torch: ok(fixture('commands/python-torch-2.11-cu130.txt')),
    gxx: 'commands/gxx-version-ubuntu24.txt',
  });
}

const queuesOf = (p: HostProbe, catalog: readonly TargetDefinition[] = TARGETS, cpuConcurrency = 2) =>
  buildQueues(p, catalog, { cpuConcurrency, taskQueueFor });

describe('GPU build hosts: probe → queues', () => {
  it('reads the recorded H100 machine: one H100 (index 0), AVX-512 CPU, torch 2.11.0+cu130, g++ 13.3', async () => {
    const p = await h100Host();
    assert.equal(p.cpuModel, 'Intel(R) Xeon(R) Processor');
    assert.equal(p.x86Level, 4);
    assert.equal(p.logicalCpus, 16);
    assert.equal(p.toolchain.python, '3.12.3');
    assert.equal(p.toolchain.torch, '2.11.0+cu130');
    assert.equal(p.toolchain.compilers['g++'].version, '13.3.0');
    assert.deepEqual(p.gpus, [
      { name: 'NVIDIA H100 80GB HBM3', computeCapability: '9.0', driverVersion: '580.159.04', index: 0 },
    ]);
  });

  it('polls both sm90 queues, one build at a time each on its one H100, and no CPU queue (other torch)', async () => {
    const { queues, rejected } = queuesOf(await h100Host());
    assert.deepEqual(
      queues.map((q) => [q.taskQueue, q.concurrency, q.gpus]),
      [
        ['build.linux-x86_64-cuda-sm90', 1, { computeCapability: '9.0', indices: [0] }],
        ['build.linux-x86_64-cuda-sm90-bf16', 1, { computeCapability: '9.0', indices: [0] }],
      ],
    );
    assert.match(
      queues[0].reason,
      /GPU NVIDIA H100 80GB HBM3 \(compute capability 9\.0\).*torch 2\.11\.0\+cu130.*1 GPU \(0\)/,
    );
    // The CPU targets pin the CPU torch build: this worker's CUDA torch cannot build them (nor cross-build).
    assert.deepEqual(
      rejected.map((r) => r.targetId),
      [...CPU_TARGETS, ...AARCH64_TARGETS].map((t) => t.id),
    );
    for (const r of rejected)
      assert.match(r.reason, /host torch 2\.11\.0\+cu130 differs from the recipe's 2\.13\.0\+cpu/);
  });

  it('a CPU-only host never polls a CUDA queue', async () => {
    const { queues, rejected } = queuesOf(await probe('xeon-avx512.txt'), TARGETS, 3);
    assert.deepEqual(
      queues.map((q) => [q.targetId, q.concurrency, q.gpus]),
      CPU_TARGETS.map((t) => [t.id, 3, null]),
    );
    assert.deepEqual(
      rejected.map((r) => r.targetId),
      [...CUDA_TARGETS, ...AARCH64_TARGETS].map((t) => t.id),
    );
    for (const r of rejected.slice(0, CUDA_TARGETS.length)) {
      assert.match(r.reason, /needs a GPU of compute capability 9\.0, host has no GPU/);
    }
    assert.match(rejected.at(-1)?.reason ?? '', /cross toolchain linux-aarch64 is not installed/);
  });

  it('concurrency is the number of GPUs of exactly that capability (8 H100 + 2 A100, synthetic)', async () => {
    // The recorded H100 line at indices 0-7, plus two A100s; the A100s serve an sm80 target, never sm90.
    const h100Line = fixture('commands/nvidia-smi-h100-index.csv').trim().replace(/, 0$/, '');
    const smi = [
      ...Array.from({ length: 8 }, (_, i) => `${h100Line}, ${i}`),
      'NVIDIA A100-SXM4-80GB, 8.0, 580.159.04, 8',
      'NVIDIA A100-SXM4-80GB, 8.0, 580.159.04, 9',
    ].join('\n');
    const sm90 = CUDA_TARGETS[0];
    const sm80: TargetDefinition = {
      ...sm90,
      id: 'linux-x86_64-cuda-sm80',
      requires: { ...sm90.requires, computeCapability: '8.0' },
      recipe: { ...sm90.recipe, targetId: 'linux-x86_64-cuda-sm80' },
    };
    const { queues } = queuesOf(await h100Host(smi), [sm90, sm80]);
    assert.deepEqual(
      queues.map((q) => [q.targetId, q.concurrency, q.gpus?.indices]),
      [
        ['linux-x86_64-cuda-sm90', 8, [0, 1, 2, 3, 4, 5, 6, 7]],
        ['linux-x86_64-cuda-sm80', 2, [8, 9]],
      ],
    );
  });

  it('KILN_WORKER_TARGETS narrows a GPU host too', async () => {
    const { queues } = buildQueues(await h100Host(), TARGETS, {
      restrictTo: ['linux-x86_64-cuda-sm90'],
      cpuConcurrency: 1,
      taskQueueFor,
    });
    assert.deepEqual(
      queues.map((q) => q.targetId),
      ['linux-x86_64-cuda-sm90'],
    );
  });
});

describe('probe output parsers', () => {
  it('parse tool versions', () => {
    assert.equal(parseToolVersion('g++ (Debian 12.2.0-14+deb12u1) 12.2.0'), '12.2.0');
    assert.equal(parseToolVersion('g++ (GCC) 11.4.1 20231218 (Red Hat 11.4.1-3)'), '11.4.1');
    assert.equal(parseToolVersion('Ubuntu clang version 18.1.3 (1ubuntu1)'), '18.1.3');
    assert.equal(parseToolVersion('no version here'), null);
    assert.equal(parseLddVersion(fixture('commands/ldd-version-debian12.txt')), '2.36');
    assert.equal(parseLddVersion('musl libc (x86_64)\nVersion 1.2.4'), null);
  });

  it('parse nvidia-smi CSV with several GPUs', () => {
    assert.deepEqual(parseNvidiaSmiCsv('NVIDIA A100-SXM4-80GB, 8.0, 550.54.15\nNVIDIA L4, 8.9, 550.54.15\n\n'), [
      { name: 'NVIDIA A100-SXM4-80GB', computeCapability: '8.0', driverVersion: '550.54.15', index: 0 },
      { name: 'NVIDIA L4', computeCapability: '8.9', driverVersion: '550.54.15', index: 1 },
    ]);
    // The probe's own query adds the index column (recorded on the H100 machine).
    assert.deepEqual(parseNvidiaSmiCsv(fixture('commands/nvidia-smi-h100-index.csv')), [
      { name: 'NVIDIA H100 80GB HBM3', computeCapability: '9.0', driverVersion: '580.159.04', index: 0 },
    ]);
    assert.deepEqual(parseNvidiaSmiCsv('NVIDIA L4, 8.9, 550.54.15, 3\nNVIDIA A10, 8.6, 550.54.15, 1\n'), [
      { name: 'NVIDIA L4', computeCapability: '8.9', driverVersion: '550.54.15', index: 3 },
      { name: 'NVIDIA A10', computeCapability: '8.6', driverVersion: '550.54.15', index: 1 },
    ]);
    assert.deepEqual(parseNvidiaSmiCsv(fixture('commands/nvidia-smi-no-driver.txt')), []);
  });

  it('parse cpuinfo without a model name', () => {
    assert.deepEqual(parseCpuinfo(''), { model: 'unknown', flags: [], processors: 0 });
  });
});

describe('probeHost (this machine, real commands)', () => {
  it('probes the live host, inside the sandbox too, with the system Python (no torch there)', async () => {
    const p = await probeHost({ pythonPath: '/usr/bin/python3', torchTimeoutMs: 20_000 });
    assert.equal(p.toolchain.sandboxed?.ok, false);
    assert.match(p.toolchain.sandboxed?.python ?? '', /^3\.\d+/);
    assert.match(p.toolchain.sandboxed?.problem ?? '', /No module named 'torch'/);
    assert.equal(p.os, 'linux');
    assert.ok(p.cpuModel.length > 0);
    assert.ok(p.logicalCpus >= 1);
    // Kiln's build hosts are x86-64 Linux machines with g++ (scripts/setup.sh requires it); the level is whatever
    // this CPU has: never assumed.
    assert.equal(p.arch, 'x86_64');
    assert.ok(p.x86Level !== null && p.x86Level >= 1);
    assert.match(p.toolchain.python ?? '', /^3\.\d+/);
    assert.match(p.toolchain.compilers['g++'].version ?? '', /^\d+\.\d+/);
    assert.match(p.toolchain.glibc ?? '', /^2\.\d+$/);
  });
});

describe('cross toolchains (linux-aarch64)', () => {
  const installed = (root: string, torch = AARCH64_TORCH_BUILD): Record<string, string> => ({
    name: 'linux-aarch64',
    arch: 'aarch64',
    torch,
    site: path.join(root, 'site'),
    sysroot: path.join(root, 'sysroot'),
    python: path.join(root, 'sysroot/usr/bin/python3.11'),
    qemu: process.execPath, // any file that exists: qemu lives outside the toolchain folder
  });
  async function toolchainDir(json: Record<string, string> | null, make = true): Promise<string> {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'kiln-cross-'));
    const root = path.join(dir, 'linux-aarch64');
    if (make) await mkdir(path.join(root, 'site'), { recursive: true });
    if (make) await mkdir(path.join(root, 'sysroot/usr/bin'), { recursive: true });
    if (make) await writeFile(path.join(root, 'sysroot/usr/bin/python3.11'), '');
    if (json) await writeFile(path.join(root, 'toolchain.json'), JSON.stringify(json));
    return dir;
  }

  it('reads an installed toolchain; says why one is missing, incomplete or points outside its folder', async () => {
    const dir = await toolchainDir(null);
    const root = path.join(dir, 'linux-aarch64');
    assert.match((await readCrossToolchain(dir, 'linux-aarch64')).problem ?? '', /not installed.*setup\.sh --cross/);
    await writeFile(path.join(root, 'toolchain.json'), JSON.stringify(installed(root)));
    const found = await readCrossToolchain(dir, 'linux-aarch64');
    assert.equal(found.problem, null);
    assert.equal(found.toolchain?.torch, AARCH64_TORCH_BUILD);
    assert.equal(found.toolchain?.root, root);
    await writeFile(path.join(root, 'toolchain.json'), JSON.stringify({ ...installed(root), sysroot: '/' }));
    assert.match((await readCrossToolchain(dir, 'linux-aarch64')).problem ?? '', /lie outside/);
    await writeFile(path.join(root, 'toolchain.json'), JSON.stringify({ ...installed(root), qemu: '/nonexistent' }));
    assert.match((await readCrossToolchain(dir, 'linux-aarch64')).problem ?? '', /\/nonexistent missing/);
    await writeFile(path.join(root, 'toolchain.json'), JSON.stringify({ ...installed(root), torch: '' }));
    assert.match((await readCrossToolchain(dir, 'linux-aarch64')).problem ?? '', /lacks torch/);
  });

  async function crossHost(torch = AARCH64_TORCH_BUILD, nodeArch = 'x64', cpu = 'xeon-avx512.txt'): Promise<HostProbe> {
    const dir = await toolchainDir(null);
    const root = path.join(dir, 'linux-aarch64');
    await writeFile(path.join(root, 'toolchain.json'), JSON.stringify(installed(root, torch)));
    const fake = fakeHost({
      compilers: { 'g++': '/usr/bin/g++', 'aarch64-linux-gnu-g++': '/usr/bin/aarch64-linux-gnu-g++' },
    });
    return probeHost({
      pythonPath: '/srv/kiln/venv/bin/python',
      cpuinfoPath: cpuinfo(cpu),
      run: fake.run,
      findExecutable: fake.findExecutable,
      nodeArch,
      platform: 'linux',
      sandboxCheck: false,
      crossToolchainsDir: dir,
    });
  }

  it('an x86 host with the toolchain serves linux-aarch64 beside its own targets', async () => {
    const p = await crossHost();
    assert.deepEqual(p.problems, []);
    const { buildable } = buildableTargets(p, TARGETS);
    assert.deepEqual(ids(buildable), [...CPU_TARGETS.map((t) => t.id), 'linux-aarch64']);
    assert.match(
      buildable.at(-1)?.reason ?? '',
      /linux\/x86_64 cross-builds aarch64.*linux-aarch64 toolchain \(torch 2\.13\.0\+cu130/,
    );
  });

  it('a toolchain with another aarch64 torch, or an aarch64 host, serves no linux-aarch64 queue', async () => {
    const other = buildableTargets(await crossHost('2.12.0+cu128'), AARCH64_TARGETS);
    assert.deepEqual(ids(other.buildable), []);
    assert.match(other.rejected[0].reason, /has torch 2\.12\.0\+cu128, the recipe pins 2\.13\.0\+cu130/);
    const arm = buildableTargets(
      await crossHost(AARCH64_TORCH_BUILD, 'arm64', 'graviton2-aarch64.txt'),
      AARCH64_TARGETS,
    );
    assert.deepEqual(ids(arm.buildable), []);
    assert.match(arm.rejected[0].reason, /is cross-built on linux\/x86_64/);
  });
});
