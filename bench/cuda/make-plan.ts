// The plan of the GPU run (bench/cuda/README.md), written where Node runs, for the GPU machine where it does not:
//   node --import @swc-node/register/esm-register bench/cuda/make-plan.ts bench/out/cuda-plan
// For each model × CUDA target: the recipe and its hash from the catalog (libs/targets), and the exact sandbox
// command line and environment the build worker would spawn for that job (apps/worker's sandboxCommandLine,
// with the capabilities a root worker on that machine has; the cgroup layer is left out, see the README).
// bench/cuda/cuda_builds.py reads plan.json on the GPU machine.
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { CUDA_TARGETS, findTarget, recipeHash } from '@kiln/targets';
import { type SandboxCapabilities, sandboxCommandLine } from '../../apps/worker/src/build-runner/sandbox.js';

/** Where the run lives on the GPU machine: outside the repo copy (its parents may not be open to nobody). */
export const DEVICE_ROOT = '/srv/kiln';
const WORK_ROOT = `${DEVICE_ROOT}/jobs`;
const PYTHON = '/opt/torch/.venv/bin/python3';
const SRC = `${DEVICE_ROOT}/src`;

/** What probeSandboxCapabilities finds for a root worker on a Linux host with util-linux (checked there). */
export const DEVICE_CAPABILITIES: SandboxCapabilities = {
  uid: 0,
  gid: 0,
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
  setprivHardening: ['--no-new-privs', '--bounding-set=-all', '--inh-caps=-all'],
  cgroups: null,
  nofileHardLimit: 1_048_576,
  notes: ['sandbox replayed by bench/cuda/cuda_builds.py from a plan made off the machine: no cgroup layer'],
};

const MODELS = ['mlp', 'cnn', 'transformer'] as const;

async function main(): Promise<void> {
  const outDir = path.resolve(process.argv[2] ?? 'bench/out/cuda-plan');
  await mkdir(outDir, { recursive: true });
  const jobs = [];
  for (const target of CUDA_TARGETS) {
    for (const model of MODELS) {
      const name = `${model}-${target.id.replace('linux-x86_64-cuda-', '')}`;
      const jobDir = `${WORK_ROOT}/job-${name}`;
      // planSandbox checks the job folder's parents on this machine: make them look like the GPU machine's.
      await mkdir(jobDir, { recursive: true, mode: 0o755 });
      const outputs = `${jobDir}/out`;
      const command = await sandboxCommandLine(
        {
          argv: [
            PYTHON,
            '-m',
            'kiln_driver',
            'build',
            '--model',
            `${jobDir}/model.pt2`,
            '--job',
            `${jobDir}/job.json`,
            '--out',
            outputs,
          ],
          cwd: jobDir,
          jobDir,
          // What runCompileDriver passes, plus what the worker adds for a GPU job: the GPU slot it holds (PCI bus
          // order, as nvidia-smi numbers them), the host's timing lock (builds side by side take turns to time)
          // and the driver's source (the worker's venv has it installed).
          env: {
            TMPDIR: `${jobDir}/tmp`,
            HOME: `${jobDir}/home`,
            TORCHINDUCTOR_CACHE_DIR: `${jobDir}/cache`,
            PYTHONNOUSERSITE: '1',
            PYTHONSAFEPATH: '1',
            PYTHONDONTWRITEBYTECODE: '1',
            PYTHONUNBUFFERED: '1',
            PYTHONPATH: `${SRC}/driver:${SRC}/runtime`,
            CUDA_DEVICE_ORDER: 'PCI_BUS_ID',
            CUDA_VISIBLE_DEVICES: '0',
            KILN_TIMING_LOCK: `${DEVICE_ROOT}/timing.lock`,
          },
          timeoutMs: 600_000,
          memoryBytes: 32 * 1024 ** 3,
          writablePaths: ['tmp', 'cache', 'home', 'out'].map((d) => `${jobDir}/${d}`),
          hidePaths: [WORK_ROOT],
          allowRlimitAs: false,
          capabilities: DEVICE_CAPABILITIES,
        },
        DEVICE_CAPABILITIES,
      );
      jobs.push({ name, model, targetId: target.id, jobDir, ...command });
    }
  }
  const targets = Object.fromEntries(
    CUDA_TARGETS.map((t) => [t.id, { requires: t.requires, recipe: t.recipe, recipeHash: recipeHash(t.recipe) }]),
  );
  const plan = {
    note: 'written by bench/cuda/make-plan.ts; read by bench/cuda/cuda_builds.py on the GPU machine',
    deviceRoot: DEVICE_ROOT,
    python: PYTHON,
    tenantId: '00000000-0000-4000-8000-0000000c0da0',
    timing: { warmup: 3, runs: 20 },
    targets,
    jobs,
  };
  if (!findTarget('linux-x86_64-cuda-sm90')) throw new Error('the catalog has no linux-x86_64-cuda-sm90');
  await writeFile(path.join(outDir, 'plan.json'), `${JSON.stringify(plan, null, 2)}\n`);
  console.log(`wrote ${path.join(outDir, 'plan.json')}: ${jobs.length} jobs`);
}

await main();
