import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { SandboxRequest } from './sandbox-plan.js';
import { planSandbox } from './sandbox-plan.js';
import type { SandboxHost } from './sandbox-probe.js';
import type { SandboxResult } from './sandbox-run.js';
import {
  allowedChildren,
  type JudgeContext,
  judgeSandboxCheck,
  runSandboxSelfTest,
  type SandboxCheckReport,
} from './sandbox-self-test.js';
import { requireFullSandbox } from './testing/require-sandbox.js';

// judgeSandboxCheck is pure: what a job reported in, which walls hold out. The last tests run the real self-test
// (python -m kiln_driver sandbox-check inside the real sandbox) on this host, whole and with a weakened bubblewrap.

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../..');

const HOST: SandboxHost = {
  uid: 0,
  gid: 0,
  isRoot: true,
  tools: { sh: '/bin/sh', bwrap: '/usr/bin/bwrap', setpriv: '/usr/bin/setpriv', prlimit: '/usr/bin/prlimit' },
  bwrapVersion: 'bubblewrap 0.8.0',
  account: { user: 'nobody', uid: 65534, gid: 65534 },
  bwrapWorks: true,
  cgroups: { version: 1, memory: '/sys/fs/cgroup/memory/w', pids: '/sys/fs/cgroup/pids/w', cpu: null },
  nofileHardLimit: 1 << 20,
  rootSymlinks: { '/bin': 'usr/bin', '/lib': 'usr/lib' },
  rootFolders: ['/usr'],
  notes: [],
};
const JOB = '/srv/kiln/.kiln/work/jobs/job-x';
const REQUEST: SandboxRequest = {
  argv: ['/srv/kiln/.kiln/venv/bin/python', '-m', 'kiln_driver', 'sandbox-check'],
  cwd: JOB,
  jobDir: JOB,
  env: { HOME: `${JOB}/home` },
  timeoutMs: 60_000,
  memoryBytes: 512 << 20,
  pidsLimit: 64,
  readOnly: ['/srv/kiln/.kiln/venv', '/etc/ld.so.cache', `${JOB}/model.pt2`, `${JOB}/job.json`],
  writable: [`${JOB}/tmp`, `${JOB}/out`],
};
const record = planSandbox(REQUEST, HOST).record;

/** What a job inside a sandbox that holds reports. */
function goodReport(): SandboxCheckReport {
  return {
    python: '3.11.2',
    executable: '/srv/kiln/.kiln/venv/bin/python',
    env: ['HOME', 'LANG', 'PATH', 'PWD'],
    identity: {
      uid: 65534,
      euid: 65534,
      gid: 65534,
      egid: 65534,
      groups: [],
      status: {
        CapInh: '0000000000000000',
        CapPrm: '0000000000000000',
        CapEff: '0000000000000000',
        CapBnd: '0000000000000000',
        CapAmb: '0000000000000000',
        NoNewPrivs: '1',
      },
      setuid0: 'EINVAL',
      rlimits: { core: [0, 0], nofile: [16384, 16384] },
    },
    namespaces: { net: 'net:[2]', pid: 'pid:[2]', mnt: 'mnt:[2]' },
    connections: [{ host: '127.0.0.1', port: 5432, connected: false, error: 'ECONNREFUSED' }],
    processes: [
      { pid: 1, cmdline: 'bwrap --unshare-user …' },
      { pid: 2, cmdline: 'python -m kiln_driver sandbox-check' },
    ],
    files: {
      listings: {
        '/': ['bin', 'dev', 'etc', 'lib', 'proc', 'srv', 'tmp', 'usr', 'var'],
        '/srv/kiln/.kiln': ['venv', 'work'],
        '/etc': ['group', 'ld.so.cache', 'passwd'],
      },
      hidden: { '/srv/kiln/.env': 'ENOENT', '/root': 'ENOENT' },
      writes: { '/': 'EROFS', [JOB]: 'EROFS', [`${JOB}/out`]: 'ok' },
    },
    pids: { forked: 61, error: 'EAGAIN' },
    memory: { returncode: -9, stdout: '', stderr: '' },
    torch: null,
    gpu: null,
  };
}

function context(patch: Partial<JudgeContext> = {}): JudgeContext {
  return {
    host: HOST,
    hostView: {
      namespaces: { net: 'net:[1]', pid: 'pid:[1]', mnt: 'mnt:[1]' },
      cmdline: 'node dist/apps/worker/main.js',
    },
    request: REQUEST,
    result: {
      record,
      cgroupStats: { oomKills: 1, limitHits: 3, peakBytes: 512 << 20, pidsRefused: 1, cpuThrottled: 0 },
    } as SandboxResult,
    endpoints: [],
    unixSockets: [],
    hidden: [],
    forkAttempts: 128,
    ownerUid: 65534,
    ...patch,
  };
}

function failed(report: SandboxCheckReport, ctx = context()): Record<string, string> {
  return Object.fromEntries(
    judgeSandboxCheck(report, ctx)
      .filter((c) => !c.ok)
      .map((c) => [c.wall, c.detail]),
  );
}

describe('judgeSandboxCheck', () => {
  it('finds every wall in place when the job saw what it should', () => {
    const checks = judgeSandboxCheck(goodReport(), context());
    assert.deepEqual(
      checks.map((c) => c.wall),
      [
        'user',
        'capabilities',
        'no-new-privs',
        'network',
        'pid-namespace',
        'filesystem-allowlist',
        'memory-limit',
        'pids-limit',
        'rlimit-core',
        'rlimit-nofile',
        'clean-environment',
      ],
    );
    assert.deepEqual(failed(goodReport()), {});
  });

  it('names each wall that gives, with what the job saw', () => {
    const r = goodReport();
    r.identity.uid = 0;
    r.identity.groups = [0, 65534];
    r.identity.status.CapEff = '000001ffffffffff';
    r.identity.status.NoNewPrivs = '0';
    r.namespaces.net = 'net:[1]';
    r.connections.push({ path: '/var/run/postgresql/.s.PGSQL.5432', connected: true, error: null });
    r.processes.push({ pid: 4242, cmdline: 'node dist/apps/worker/main.js' });
    (r.files.listings['/'] as string[]).push('root');
    r.files.hidden['/srv/kiln/.env'] = 'exists';
    r.files.writes['/'] = 'ok';
    r.memory = { returncode: 0, stdout: 'survived', stderr: '' };
    r.pids = { forked: 128, error: null };
    r.identity.rlimits.core = [-1, -1];
    r.env.push('DATABASE_URL');
    const f = failed(
      r,
      context({
        ownerUid: 0,
        result: {
          record,
          cgroupStats: { oomKills: 0, limitHits: 0, peakBytes: 1, pidsRefused: 0, cpuThrottled: 0 },
        } as SandboxResult,
      }),
    );
    assert.match(f.user, /runs as uid 0\/65534; keeps supplementary groups 0/);
    assert.match(f.user, /the file it wrote belongs to host uid 0/);
    assert.match(f.capabilities, /^CapEff 000001ffffffffff$/);
    assert.match(f['no-new-privs'], /NoNewPrivs is 0/);
    assert.match(f.network, /shares the host's network namespace .*reached \/var\/run\/postgresql\/\.s\.PGSQL\.5432/);
    assert.match(f['pid-namespace'], /the worker process is visible as pid 4242/);
    assert.match(f['filesystem-allowlist'], /\/ shows root beyond the allowlist/);
    assert.match(f['filesystem-allowlist'], /\/srv\/kiln\/\.env is visible \(exists\)/);
    assert.match(f['filesystem-allowlist'], /could write \//);
    assert.match(f['memory-limit'], /ended with 0 \(survived\); the job cgroup counted no OOM kill/);
    assert.match(f['pids-limit'], /fork ended with no error; 128 forks all succeeded; the job cgroup refused no fork/);
    assert.match(f['rlimit-core'], /RLIMIT_CORE is -1:-1/);
    assert.match(f['clean-environment'], /unexpected variables DATABASE_URL/);
    assert.equal(f['rlimit-nofile'], undefined);
  });

  it('does not take a job’s word for the limits: the cgroup must have counted the kill and the refusal', () => {
    const f = failed(
      goodReport(),
      context({
        result: {
          record,
          cgroupStats: { oomKills: 0, limitHits: 0, peakBytes: 1, pidsRefused: 0, cpuThrottled: 0 },
        } as SandboxResult,
      }),
    );
    assert.deepEqual(Object.keys(f).sort(), ['memory-limit', 'pids-limit']);
  });

  it('lists, for each folder above the view, the names it may show', () => {
    const allowed = allowedChildren(REQUEST, HOST);
    assert.deepEqual([...allowed.get('/')!].sort(), ['bin', 'dev', 'etc', 'lib', 'proc', 'srv', 'tmp', 'usr', 'var']);
    assert.deepEqual([...allowed.get('/etc')!].sort(), ['group', 'ld.so.cache', 'passwd']);
    assert.deepEqual([...allowed.get('/srv/kiln/.kiln')!].sort(), ['venv', 'work']);
    assert.deepEqual([...allowed.get(JOB)!].sort(), ['job.json', 'model.pt2', 'out', 'tmp']);
    assert.deepEqual([...allowed.get('/var')!], ['tmp']);
    assert.equal(allowed.has('/usr'), false, 'a folder shown whole is not listed');
  });
});

describe('runSandboxSelfTest on this host', () => {
  let workRoot: string;
  let stub: string;
  before(async () => {
    // Not under /tmp: inside the sandbox /tmp is a private tmpfs, and a job folder there would sit in it.
    await mkdir(path.join(REPO, '.kiln', 'work'), { recursive: true });
    workRoot = await mkdtemp(path.join(REPO, '.kiln', 'work', 'self-test-spec-'));
    await chmod(workRoot, 0o755);
    // A bubblewrap that leaves the job in the host's network namespace (everything else as usual).
    stub = path.join(workRoot, 'bwrap-shared-net');
    await writeFile(
      stub,
      '#!/bin/sh\nfor a; do shift; [ "$a" = --unshare-net ] || set -- "$@" "$a"; done\nexec bwrap "$@"\n',
      { mode: 0o755 },
    );
  });
  after(async () => {
    await rm(workRoot, { recursive: true, force: true });
  });

  const settings = (host: SandboxHost) => ({
    pythonPath: process.env.KILN_TEST_PYTHON ?? path.join(REPO, '.kiln', 'venv', 'bin', 'python'),
    workRoot: path.join(workRoot, 'jobs'),
    timeoutMs: 300_000,
    memoryBytes: 4 * 1024 ** 3,
    pidsLimit: 4096,
    host,
  });

  it('passes every wall in the real sandbox', { timeout: 300_000 }, async (t) => {
    const host = await requireFullSandbox(t);
    const report = await runSandboxSelfTest({
      settings: settings(host!),
      endpoints: [{ host: '127.0.0.1', port: 5432, what: 'PostgreSQL' }],
      unixSockets: ['/var/run/postgresql/.s.PGSQL.5432'],
      hidden: ['/root', '/home', '/etc/shadow', '/run/postgresql'],
    });
    assert.deepEqual(report.failed, [], JSON.stringify(report.failed, null, 2));
    assert.equal(report.ok, true);
    assert.equal(report.toolchain.ok, true, report.toolchain.problem ?? '');
    assert.match(report.toolchain.torch ?? '', /^2\.\d+/);
    for (const wall of ['network', 'pid-namespace', 'filesystem-allowlist', 'memory-limit', 'pids-limit', 'timeout']) {
      assert.ok(
        report.checks.some((c) => c.wall === wall && c.ok),
        wall,
      );
    }
  });

  it('sees from inside that a bubblewrap keeping the host network does not hold', { timeout: 300_000 }, async (t) => {
    const host = await requireFullSandbox(t);
    const report = await runSandboxSelfTest({
      settings: settings({ ...host!, tools: { ...host!.tools, bwrap: stub } }),
      endpoints: [],
      unixSockets: [],
      hidden: [],
    });
    assert.equal(report.ok, false);
    const network = report.failed.find((c) => c.wall === 'network');
    assert.ok(network, JSON.stringify(report.failed));
    assert.match(network.detail, /shares the host's network namespace/);
    assert.match(network.detail, /reached 127\.0\.0\.1:\d+/, 'the worker’s own listener answered');
    assert.ok(
      report.checks.some((c) => c.wall === 'pid-namespace' && c.ok),
      'the other walls still hold',
    );
  });
});
