// The plan of the GPU run (bench/cuda/README.md), written where Node runs, for the GPU machine where it does not:
//   node --import @swc-node/register/esm-register bench/cuda/make-plan.ts bench/out/cuda-plan
// For each model × CUDA target: the recipe and its hash from the catalog (libs/targets), and the exact sandbox
// command line and environment the build worker would spawn for that job (apps/worker's sandboxCommandLine,
// with the capabilities a root worker on that machine has; the cgroup layer is left out, see the README).
// bench/cuda/cuda_builds.py reads plan.json on the GPU machine.
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { CUDA_TARGETS, findTarget, recipeHash } from '@kiln/targets';
import { ETC_ALLOWLIST } from '../../apps/worker/src/build-runner/sandbox-view.js';
import { planSandbox } from '../../apps/worker/src/build-runner/sandbox-plan.js';
import type { SandboxHost } from '../../apps/worker/src/build-runner/sandbox-probe.js';

/** Where the run lives on the GPU machine: outside the repo copy (its parents may not be open to nobody). */
export const DEVICE_ROOT = '/srv/kiln';
const WORK_ROOT = `${DEVICE_ROOT}/jobs`;
const PYTHON = '/opt/torch/.venv/bin/python3';
const SRC = `${DEVICE_ROOT}/src`;
/**
 * What the job reads of the GPU machine besides /usr: the venv, the interpreter it was made from, the driver's
 * source, the loader and compiler files of /etc, NVIDIA's userspace (nvidia-smi's folder) and the GCC that CUDA
 * builds use. Recorded there (sys.prefix, sys.base_prefix, sys.path; bench/cuda/README.md).
 */
const DEVICE_VIEW = [
  '/opt/torch/.venv',
  '/opt/gcc',
  '/usr/local/nvidia',
  `${SRC}/driver`,
  `${SRC}/runtime`,
  `${DEVICE_ROOT}/timing.lock`,
  ...ETC_ALLOWLIST,
];

/** What probeSandboxHost finds for a root worker on that machine (Ubuntu 24.04, cgroup v2, bubblewrap). */
export const DEVICE_HOST: SandboxHost = {
  uid: 0,
  gid: 0,
  isRoot: true,
  tools: { sh: '/bin/sh', bwrap: '/usr/bin/bwrap', setpriv: '/usr/bin/setpriv', prlimit: '/usr/bin/prlimit' },
  bwrapVersion: 'bubblewrap',
  account: { user: 'nobody', uid: 65534, gid: 65534 },
  bwrapWorks: true,
  // cuda_builds.py puts each job in a cgroup (memory.max, pids.max) of its own before this command line.
  cgroups: { version: 2, parent: '/sys/fs/cgroup', controllers: ['memory', 'pids'] },
  nofileHardLimit: 1_048_576,
  rootSymlinks: { '/bin': 'usr/bin', '/lib': 'usr/lib', '/lib64': 'usr/lib64', '/sbin': 'usr/sbin' },
  rootFolders: ['/usr'],
  notes: ['sandbox replayed by bench/cuda/cuda_builds.py from a plan made off the machine'],
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
      const outputs = `${jobDir}/out`;
      const env = {
        TMPDIR: `${jobDir}/tmp`,
        HOME: `${jobDir}/home`,
        TORCHINDUCTOR_CACHE_DIR: `${jobDir}/cache`,
        PYTHONNOUSERSITE: '1',
        PYTHONSAFEPATH: '1',
        PYTHONDONTWRITEBYTECODE: '1',
        PYTHONUNBUFFERED: '1',
        // What the worker adds for a GPU job: the GPU slot it holds (PCI bus order, as nvidia-smi numbers them),
        // the host's timing lock (builds side by side take turns to time) and the driver's source (the worker's
        // venv has it installed).
        PYTHONPATH: `${SRC}/driver:${SRC}/runtime`,
        CUDA_DEVICE_ORDER: 'PCI_BUS_ID',
        CUDA_VISIBLE_DEVICES: '0',
        KILN_TIMING_LOCK: `${DEVICE_ROOT}/timing.lock`,
      };
      const plan = planSandbox(
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
          env,
          timeoutMs: 600_000,
          memoryBytes: 32 * 1024 ** 3,
          readOnly: [...DEVICE_VIEW, `${jobDir}/model.pt2`, `${jobDir}/job.json`],
          writable: ['tmp', 'cache', 'home', 'out'].map((d) => `${jobDir}/${d}`),
          devices: ['/dev/nvidia0', '/dev/nvidiactl', '/dev/nvidia-uvm', '/dev/nvidia-uvm-tools'],
        },
        DEVICE_HOST,
      );
      const command = { argv: plan.argv, env: plan.env, applied: plan.record };
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
