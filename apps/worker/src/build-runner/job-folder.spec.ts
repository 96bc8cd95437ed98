import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createJobFolder, sweepStaleJobFolders } from './job-folder.js';

let root: string;

before(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'kiln-job-folder-spec-'));
});

after(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('job folders', () => {
  it('are private to the worker: the jobs folder and each job folder can be passed through, not listed', async () => {
    const jobs = path.join(root, 'jobs');
    const folder = await createJobFolder(jobs);
    assert.equal((await stat(jobs)).mode & 0o777, 0o711);
    assert.equal((await stat(folder.dir)).mode & 0o777, 0o711);
    assert.equal(folder.modelPath, path.join(folder.dir, 'model.pt2'));
    assert.ok(folder.writable.includes(folder.buildDir));
    assert.deepEqual(
      folder.writable.map((w) => path.basename(w)),
      ['tmp', 'home', 'out', 'build'],
    );
    await folder.remove();
    assert.equal(existsSync(folder.dir), false);
  });

  it('sweeps the folders of workers that are gone (a kill -9 mid-build), never a live worker’s', async () => {
    const jobs = path.join(root, 'sweep');
    const mine = await createJobFolder(jobs);
    const dead = await createJobFolder(jobs);
    // The pid of a process that has exited: the worker that made this folder is gone.
    const exited = spawnSync('true').pid;
    await writeFile(path.join(dead.dir, '.worker-pid'), `${exited}@${os.hostname()}\n`);
    // An older worker's folder names its pid alone: this host's.
    const deadOld = await createJobFolder(jobs);
    await writeFile(path.join(deadOld.dir, '.worker-pid'), `${exited}\n`);
    // Another host's folder (a shared work folder): that pid means nothing here, so it stays.
    const otherHost = await createJobFolder(jobs);
    await writeFile(path.join(otherHost.dir, '.worker-pid'), `${exited}@not-${os.hostname()}\n`);
    const legacy = path.join(jobs, 'job-legacy');
    await mkdir(legacy);
    await writeFile(path.join(legacy, 'model.pt2'), 'a model left behind');
    await mkdir(path.join(jobs, 'locks'));

    const removed = await sweepStaleJobFolders(jobs);
    assert.deepEqual(removed.sort(), [path.basename(dead.dir), path.basename(deadOld.dir), 'job-legacy'].sort());
    assert.deepEqual(
      (await readdir(jobs)).sort(),
      [path.basename(mine.dir), path.basename(otherHost.dir), 'locks'].sort(),
    );
    await mine.remove();
    await otherHost.remove();
  });
});
