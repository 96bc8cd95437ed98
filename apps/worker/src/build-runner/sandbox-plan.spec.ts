import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  missingWalls,
  planSandbox,
  SANDBOX_BUILD_DIR,
  SANDBOX_WALLS,
  type SandboxRequest,
  SandboxUnavailableError,
} from './sandbox-plan.js';
import type { SandboxHost } from './sandbox-probe.js';

// The planner is pure: these hosts are descriptions, nothing runs. sandbox-run.spec.ts runs the plans for real.

const FULL: SandboxHost = {
  uid: 0,
  gid: 0,
  isRoot: true,
  tools: { sh: '/bin/sh', bwrap: '/usr/bin/bwrap', setpriv: '/usr/bin/setpriv', prlimit: '/usr/bin/prlimit' },
  bwrapVersion: 'bubblewrap 0.8.0',
  account: { user: 'nobody', uid: 65534, gid: 65534 },
  bwrapWorks: true,
  cgroups: { version: 1, memory: '/sys/fs/cgroup/memory/w', pids: '/sys/fs/cgroup/pids/w', cpu: null },
  nofileHardLimit: 1_048_576,
  rootSymlinks: { '/bin': 'usr/bin', '/lib': 'usr/lib', '/lib64': 'usr/lib64', '/sbin': 'usr/sbin' },
  rootFolders: ['/usr'],
  notes: [],
};

const JOB = '/srv/kiln/work/jobs/job-abc123';
const request = (extra: Partial<SandboxRequest> = {}): SandboxRequest => ({
  argv: ['/srv/kiln/venv/bin/python', '-m', 'kiln_driver', 'build'],
  cwd: JOB,
  jobDir: JOB,
  env: { HOME: `${JOB}/home`, TMPDIR: `${JOB}/tmp`, TORCHINDUCTOR_CACHE_DIR: `${JOB}/cache` },
  timeoutMs: 60_000,
  memoryBytes: 8 * 1024 ** 3,
  readOnly: ['/srv/kiln/venv', '/usr/lib/python3.11', '/etc/ld.so.cache', `${JOB}/model.pt2`, `${JOB}/job.json`],
  writable: ['tmp', 'cache', 'home', 'out'].map((d) => `${JOB}/${d}`),
  protectedPaths: ['/srv/kiln/keys', '/srv/kiln/.env', '/srv/kiln/data'],
  ...extra,
});

/** The value after `flag` in argv (e.g. --uid), every time it appears. */
function pairs(argv: string[], flag: string): [string, string][] {
  const out: [string, string][] = [];
  argv.forEach((a, i) => {
    if (a === flag) out.push([argv[i + 1], argv[i + 2]]);
  });
  return out;
}

describe('missingWalls', () => {
  it('finds nothing missing on a root host with bubblewrap, setpriv, prlimit and memory + pids cgroups', () => {
    assert.deepEqual(missingWalls(FULL), []);
  });

  it('names every wall a host lacks, and why', () => {
    const walls = (host: Partial<SandboxHost>): string[] => missingWalls({ ...FULL, ...host }).map((m) => m.wall);
    assert.deepEqual(walls({ tools: { ...FULL.tools, bwrap: null } }), [
      'network',
      'pid-namespace',
      'filesystem-allowlist',
    ]);
    assert.deepEqual(walls({ bwrapWorks: false }), ['network', 'pid-namespace', 'filesystem-allowlist']);
    assert.deepEqual(walls({ isRoot: false, uid: 1000, account: null }), ['user']);
    assert.deepEqual(walls({ cgroups: null }), ['memory-limit', 'pids-limit']);
    assert.deepEqual(walls({ cgroups: { version: 2, parent: '/sys/fs/cgroup/w', controllers: ['memory', 'cpu'] } }), [
      'pids-limit',
    ]);
    assert.deepEqual(walls({ tools: { ...FULL.tools, prlimit: null } }), ['rlimit-core', 'rlimit-nofile']);
    const none = missingWalls({
      ...FULL,
      isRoot: false,
      uid: 1000,
      account: null,
      tools: { sh: '/bin/sh', bwrap: null, setpriv: null, prlimit: null },
      cgroups: null,
    });
    assert.deepEqual(
      none.map((m) => m.wall),
      SANDBOX_WALLS.filter((w) => w !== 'timeout' && w !== 'clean-environment'),
    );
    assert.match(none.find((m) => m.wall === 'user')!.why, /the worker is not root \(uid 1000\)/);
    assert.match(none.find((m) => m.wall === 'network')!.why, /bubblewrap \(bwrap\) is not installed/);
  });
});

describe('planSandbox (enforced)', () => {
  const plan = planSandbox(request(), FULL);

  it('chains prlimit, then setpriv to nobody, then bubblewrap with every namespace, then the command', () => {
    const { argv } = plan;
    assert.deepEqual(argv.slice(0, 4), ['/usr/bin/prlimit', '--nofile=16384:16384', '--core=0:0', '--']);
    assert.deepEqual(argv.slice(4, 12), [
      '/usr/bin/setpriv',
      '--reuid=65534',
      '--regid=65534',
      '--clear-groups',
      '--no-new-privs',
      '--bounding-set=-all',
      '--inh-caps=-all',
      '--',
    ]);
    assert.equal(argv[12], '/usr/bin/bwrap');
    const bwrap = argv.slice(12, argv.lastIndexOf('--'));
    for (const flag of [
      '--unshare-user',
      '--unshare-pid',
      '--unshare-net',
      '--unshare-ipc',
      '--unshare-uts',
      '--disable-userns',
      '--die-with-parent',
      '--new-session',
    ]) {
      assert.ok(bwrap.includes(flag), flag);
    }
    assert.ok(!bwrap.includes('--share-net'));
    assert.deepEqual(bwrap.slice(bwrap.indexOf('--cap-drop'), bwrap.indexOf('--cap-drop') + 2), ['--cap-drop', 'ALL']);
    assert.deepEqual(bwrap.slice(bwrap.indexOf('--uid'), bwrap.indexOf('--uid') + 4), [
      '--uid',
      '65534',
      '--gid',
      '65534',
    ]);
    assert.deepEqual(argv.slice(argv.lastIndexOf('--') + 1), request().argv);
  });

  it('shows an allowlist: system folders and toolchain read-only, the job’s folders writable, nothing else', () => {
    const { argv } = plan;
    assert.deepEqual(pairs(argv, '--ro-bind'), [
      ['/usr', '/usr'],
      [`${JOB}/.sandbox/passwd`, '/etc/passwd'],
      [`${JOB}/.sandbox/group`, '/etc/group'],
      ['/etc/ld.so.cache', '/etc/ld.so.cache'],
      ['/srv/kiln/venv', '/srv/kiln/venv'],
      [`${JOB}/job.json`, `${JOB}/job.json`],
      [`${JOB}/model.pt2`, `${JOB}/model.pt2`],
    ]);
    // /usr/lib/python3.11 is inside /usr: no second bind. /bin etc. are the merged-/usr links.
    assert.deepEqual(pairs(argv, '--symlink'), [
      ['usr/bin', '/bin'],
      ['usr/lib', '/lib'],
      ['usr/lib64', '/lib64'],
      ['usr/sbin', '/sbin'],
    ]);
    assert.deepEqual(
      pairs(argv, '--bind').map(([src, dest]) => (src === dest ? src : `${src} -> ${dest}`)),
      ['cache', 'home', 'out', 'tmp'].map((d) => `${JOB}/${d}`),
    );
    assert.deepEqual(pairs(argv, '--dev-bind'), []);
    assert.ok(argv.join(' ').includes('--proc /proc --dev /dev --tmpfs /dev/shm --tmpfs /tmp --tmpfs /var/tmp'));
    // The binds come after the fresh mounts, so a job folder under /tmp is not covered by the private /tmp.
    assert.ok(argv.indexOf('--bind') > argv.lastIndexOf('--tmpfs'));
    assert.ok(argv.join(' ').includes(`--remount-ro / --chdir ${JOB} --`));
    assert.deepEqual(plan.record.view.readOnly, [
      '/etc/ld.so.cache',
      '/srv/kiln/venv',
      `${JOB}/job.json`,
      `${JOB}/model.pt2`,
    ]);
  });

  it('records every wall as held', () => {
    const r = plan.record;
    assert.equal(r.mode, 'enforced');
    assert.deepEqual(r.missing, []);
    assert.equal(r.tool, 'bubblewrap 0.8.0');
    assert.deepEqual(
      [r.network, r.processes, r.filesystem, r.user, r.capabilities, r.noNewPrivs],
      ['none', 'private-pid-namespace', 'allowlist', 'nobody', 'none', true],
    );
    assert.deepEqual([r.uid, r.gid], [65534, 65534]);
    assert.deepEqual([r.memoryLimit, r.memoryBytes, r.pidsLimit], ['cgroup-v1', 8 * 1024 ** 3, 4096]);
    assert.deepEqual(r.rlimits, { nofile: 16_384, core: 0 });
    assert.equal(r.cpuLimit, null);
    assert.equal(r.timeoutMs, 60_000);
    assert.deepEqual(r.envKeys, ['HOME', 'LANG', 'PATH', 'TMPDIR', 'TORCHINDUCTOR_CACHE_DIR']);
    assert.deepEqual(plan.env.PATH.split(':').slice(-2), ['/sbin', '/bin']);
  });

  it('gives a GPU build its device nodes (and no address-space limit: CUDA reserves huge ranges)', () => {
    const gpu = planSandbox(
      request({
        devices: ['/dev/nvidiactl', '/dev/nvidia0', '/dev/nvidia-uvm'],
        env: { CUDA_VISIBLE_DEVICES: '0', CUDA_DEVICE_ORDER: 'PCI_BUS_ID' },
      }),
      FULL,
    );
    assert.deepEqual(pairs(gpu.argv, '--dev-bind'), [
      ['/dev/nvidia-uvm', '/dev/nvidia-uvm'],
      ['/dev/nvidia0', '/dev/nvidia0'],
      ['/dev/nvidiactl', '/dev/nvidiactl'],
    ]);
    // The device binds come after the fresh /dev they go into.
    assert.ok(gpu.argv.indexOf('--dev-bind') > gpu.argv.indexOf('--dev'));
    assert.ok(!gpu.argv.some((a) => a.startsWith('--as')));
    assert.equal(gpu.record.memoryLimit, 'cgroup-v1', 'the GPU path has its cgroup memory limit too');
    assert.equal(gpu.env.CUDA_VISIBLE_DEVICES, '0');
  });

  it('refuses a view that would show a protected path, and writable folders outside the job', () => {
    assert.throws(
      () => planSandbox(request({ readOnly: ['/srv/kiln'] }), FULL),
      /the sandbox view would show \/srv\/kiln\/keys \(through \/srv\/kiln\): refusing to run/,
    );
    assert.throws(
      () => planSandbox(request({ writable: ['/srv/kiln/shared'] }), FULL),
      /writable folder \/srv\/kiln\/shared is outside the job folder/,
    );
    // A toolchain folder below a protected one's parent is fine (the venv under KILN_HOME).
    assert.doesNotThrow(() => planSandbox(request({ readOnly: ['/srv/kiln/venv'] }), FULL));
  });

  it('shows the build folder at one fixed path in every job (reproducible code parts), after the fresh /tmp', () => {
    const writable = ['tmp', 'cache', 'home', 'out', 'build'].map((d) => `${JOB}/${d}`);
    const plan = planSandbox(request({ writable, buildDir: `${JOB}/build` }), FULL);
    assert.equal(plan.env.KILN_BUILD_DIR, SANDBOX_BUILD_DIR);
    assert.ok(pairs(plan.argv, '--bind').some(([from, to]) => from === `${JOB}/build` && to === SANDBOX_BUILD_DIR));
    // A bind made before `--tmpfs /tmp` would be hidden by it.
    const bindAt = plan.argv.findIndex((a, i) => a === '--bind' && plan.argv[i + 2] === SANDBOX_BUILD_DIR);
    assert.ok(bindAt > plan.argv.findIndex((a, i) => a === '--tmpfs' && plan.argv[i + 1] === '/tmp'));
    // Another job's plan names the same path inside, its own folder outside.
    const other = '/srv/kiln/work/jobs/job-zzz999';
    const second = planSandbox(
      request({
        jobDir: other,
        cwd: other,
        writable: writable.map((w) => w.replace(JOB, other)),
        buildDir: `${other}/build`,
      }),
      FULL,
    );
    assert.equal(second.env.KILN_BUILD_DIR, plan.env.KILN_BUILD_DIR);
    assert.ok(pairs(second.argv, '--bind').some(([from, to]) => from === `${other}/build` && to === SANDBOX_BUILD_DIR));
    // Only a folder the job may write anyway: never a way to bind something else of the host.
    assert.throws(
      () => planSandbox(request({ buildDir: '/srv/kiln/data' }), FULL),
      /build folder \/srv\/kiln\/data is not one of the job's writable folders/,
    );
    assert.throws(() => planSandbox(request({ buildDir: JOB }), FULL), /is not one of the job's writable folders/);
  });
});

describe('planSandbox (walls missing)', () => {
  const weak: SandboxHost = { ...FULL, tools: { ...FULL.tools, bwrap: null }, cgroups: null, notes: ['no bwrap'] };

  it('refuses to plan anything without the opt-out', () => {
    assert.throws(
      () => planSandbox(request(), weak),
      (err: unknown) =>
        err instanceof SandboxUnavailableError &&
        err.missing.map((m) => m.wall).join(',') ===
          'network,pid-namespace,filesystem-allowlist,memory-limit,pids-limit' &&
        /the build sandbox does not hold: network \(bubblewrap \(bwrap\) is not installed\)/.test(err.message),
    );
  });

  it('counts a wall the self-test found missing as missing, though the tools are there', () => {
    const tested: SandboxHost = {
      ...FULL,
      failedSelfTest: [
        { wall: 'network', why: 'the job shares the host network namespace' },
        { wall: 'toolchain', why: 'not a wall: ignored here' },
      ],
    };
    assert.throws(() => planSandbox(request(), tested), SandboxUnavailableError);
    const plan = planSandbox(request({ insecureLocal: true }), tested);
    assert.equal(plan.record.mode, 'insecure-local');
    assert.deepEqual(plan.record.missing, [
      {
        wall: 'network',
        why: 'the self-test found it missing inside a job: the job shares the host network namespace',
      },
    ]);
    assert.equal(plan.record.network, 'host', 'the record does not claim what the self-test disproved');
    assert.equal(plan.record.filesystem, 'allowlist');
  });

  it('without bubblewrap shows the build folder at its host path (nothing to bind it elsewhere)', () => {
    const writable = ['tmp', 'build'].map((d) => `${JOB}/${d}`);
    const plan = planSandbox(request({ writable, buildDir: `${JOB}/build`, insecureLocal: true }), weak);
    assert.equal(plan.env.KILN_BUILD_DIR, `${JOB}/build`);
    assert.ok(!plan.argv.includes(SANDBOX_BUILD_DIR));
  });

  it('with KILN_SANDBOX=insecure-local keeps what the host has and records what is missing', () => {
    const plan = planSandbox(request({ insecureLocal: true }), weak);
    assert.equal(plan.bwrap, false);
    assert.equal(plan.record.mode, 'insecure-local');
    assert.deepEqual(
      plan.record.missing.map((m) => m.wall),
      ['network', 'pid-namespace', 'filesystem-allowlist', 'memory-limit', 'pids-limit'],
    );
    assert.deepEqual([plan.record.network, plan.record.filesystem, plan.record.user], ['host', 'host', 'nobody']);
    assert.deepEqual([plan.record.memoryLimit, plan.record.pidsLimit], ['none', null]);
    assert.ok(plan.argv.includes('/usr/bin/setpriv') && !plan.argv.includes('/usr/bin/bwrap'));
    assert.deepEqual(plan.argv.slice(-4), request().argv);
  });
});
