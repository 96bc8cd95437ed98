import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { cgroupFolder, parseCgroupMounts, parseProcCgroup } from './cgroup-limits.js';

// /proc/self/cgroup and /proc/self/mountinfo recorded on this dev machine (hybrid: cgroup v1 controllers
// plus an empty v2 tree) and on the GPU machine (pure cgroup v2).
const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'cgroup');
const fixture = (name: string): string => readFileSync(path.join(FIXTURES, name), 'utf8');

describe('cgroup discovery', () => {
  it('finds the v1 memory/pids/cpu folders of a hybrid host', () => {
    const entries = parseProcCgroup(fixture('hybrid-v1-proc-cgroup.txt'));
    const mounts = parseCgroupMounts(fixture('hybrid-v1-mountinfo.txt'));
    assert.equal(mounts.filter((m) => m.version === 1).length, 9);
    assert.equal(
      cgroupFolder(entries, mounts, 'memory'),
      '/sys/fs/cgroup/memory/process_api/131c1b8e42532a30eee0e8282759e596',
    );
    assert.equal(cgroupFolder(entries, mounts, 'pids'), '/sys/fs/cgroup/pids');
    assert.equal(cgroupFolder(entries, mounts, 'cpu'), '/sys/fs/cgroup/cpu');
    // The v2 tree of a hybrid host is there, but holds no memory controller (the prober checks that).
    assert.equal(cgroupFolder(entries, mounts, null), '/sys/fs/cgroup/unified');
  });

  it('finds the unified folder of a v2 host', () => {
    const entries = parseProcCgroup(fixture('unified-v2-proc-cgroup.txt'));
    const mounts = parseCgroupMounts(fixture('unified-v2-mountinfo.txt'));
    assert.equal(cgroupFolder(entries, mounts, null), '/sys/fs/cgroup/process_api/a2f75fc5fefc6e7850280f206fba5f79');
    assert.equal(cgroupFolder(entries, mounts, 'memory'), null);
  });

  it('strips the mount root when a container sees only its own sub-tree', () => {
    const entries = parseProcCgroup('4:memory:/docker/abc123\n0::/docker/abc123\n');
    const mounts = parseCgroupMounts(
      [
        '40 35 0:32 /docker/abc123 /sys/fs/cgroup/memory ro,nosuid - cgroup cgroup rw,memory',
        '41 35 0:38 /docker/abc123 /sys/fs/cgroup/unified ro,nosuid - cgroup2 cgroup2 rw',
      ].join('\n'),
    );
    assert.equal(cgroupFolder(entries, mounts, 'memory'), '/sys/fs/cgroup/memory');
    assert.equal(cgroupFolder(entries, mounts, null), '/sys/fs/cgroup/unified');
  });

  it('reads combined controllers and escaped mount points', () => {
    const mounts = parseCgroupMounts(
      '33 31 0:30 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n' +
        '34 31 0:31 / /mnt/with\\040space rw - cgroup cgroup rw,pids\n',
    );
    assert.deepEqual(mounts[0].controllers, ['cpu', 'cpuacct']);
    assert.equal(mounts[1].mountPoint, '/mnt/with space');
  });
});
