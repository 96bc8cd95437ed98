// The API and the build worker as plain JavaScript in dist/, which is what `npm start` (scripts/stack.sh) and the
// end-to-end tests' workers run; `npm run build` (scripts/build.ts) calls buildDist(). The projects and their
// folders come from nest-cli.json.
//
// Why not run the TypeScript directly, as the CLI and the scripts do: the in-process SWC loader (its
// native module, every transformed source kept with its source map) costs a long-running service about a hundred
// MiB of resident memory, as much as the API needs besides (bench/README.md, "Uploads"). Why not `nest build`: the libraries are npm
// workspaces whose package.json points at their TypeScript sources, so the compiled apps also need compiled
// libraries to import; here each one gets a copy of its package.json pointing at its .js, linked under
// dist/node_modules/, where Node finds it before the workspace link in ./node_modules.
import { transformFile, type Options } from '@swc/core';
import { copyFile, mkdir, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';

interface NestProject {
  type: 'application' | 'library';
  root: string;
  sourceRoot: string;
}

const ROOT = path.resolve(import.meta.dirname, '../..');
export const DIST = path.join(ROOT, 'dist');

/** How a compiled service is started: scripts/stack.sh (APP_NODE_FLAGS) uses the same flags. */
export const APP_NODE_FLAGS = ['--enable-source-maps', '--max-semi-space-size=4'];

/** The compiled entry of an app of nest-cli.json. */
export function distEntry(app: 'api' | 'worker'): string {
  return path.join(DIST, 'apps', app, 'src', 'main.js');
}

// The same transform as the tsconfig (legacy decorators with metadata, which Nest's injection reads). Import
// attributes are kept: Node loads a JSON module (shared contract data such as x86-levels.json) only with one.
const SWC_OPTIONS: Options = {
  jsc: {
    parser: { syntax: 'typescript', decorators: true },
    target: 'es2022',
    experimental: { keepImportAttributes: true },
    keepClassNames: true,
    transform: { legacyDecorator: true, decoratorMetadata: true, useDefineForClassFields: false },
  },
  module: { type: 'es6' },
  sourceMaps: true,
};

/** The TypeScript sources to compile and the JSON files they import (copied as they are). */
async function* sources(dir: string): AsyncGenerator<string> {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) {
      if (entry.name !== 'node_modules') yield* sources(p);
    } else if ((p.endsWith('.ts') && !p.endsWith('.spec.ts') && !p.endsWith('.d.ts')) || p.endsWith('.json')) {
      yield p;
    }
  }
}

async function compile(file: string): Promise<void> {
  if (file.endsWith('.json')) {
    const out = path.join(DIST, path.relative(ROOT, file));
    await mkdir(path.dirname(out), { recursive: true });
    await copyFile(file, out);
    return;
  }
  const out = path.join(DIST, path.relative(ROOT, file)).replace(/\.ts$/, '.js');
  const { code, map } = await transformFile(file, {
    ...SWC_OPTIONS,
    sourceFileName: path.relative(path.dirname(out), file),
  });
  await mkdir(path.dirname(out), { recursive: true });
  await writeFile(out, `${code}\n//# sourceMappingURL=${path.basename(out)}.map\n`);
  if (map) await writeFile(`${out}.map`, map);
}

/** A library's package.json with its exports pointing at the compiled files, linked where dist/ code resolves it. */
async function linkLibrary(project: NestProject): Promise<void> {
  const pkg = JSON.parse(await readFile(path.join(ROOT, project.root, 'package.json'), 'utf8')) as {
    name: string;
    exports?: unknown;
  };
  const toJs = (v: unknown): unknown =>
    typeof v === 'string'
      ? v.replace(/\.ts$/, '.js')
      : Object.fromEntries(Object.entries(v as Record<string, unknown>).map(([k, x]) => [k, toJs(x)]));
  pkg.exports = toJs(pkg.exports);
  await mkdir(path.join(DIST, project.root), { recursive: true });
  await writeFile(path.join(DIST, project.root, 'package.json'), `${JSON.stringify(pkg, null, 2)}\n`);
  const link = path.join(DIST, 'node_modules', pkg.name);
  await mkdir(path.dirname(link), { recursive: true });
  await symlink(path.relative(path.dirname(link), path.join(DIST, project.root)), link);
}

/** Compiles every project of nest-cli.json into dist/ (from scratch: about a second). */
export async function buildDist(): Promise<{ projects: number; files: number; seconds: number }> {
  const started = performance.now();
  const nestCli = JSON.parse(await readFile(path.join(ROOT, 'nest-cli.json'), 'utf8')) as {
    projects: Record<string, NestProject>;
  };
  const projects = Object.values(nestCli.projects);
  await rm(DIST, { recursive: true, force: true });
  const files: string[] = [];
  for (const project of projects) {
    for await (const file of sources(path.join(ROOT, project.sourceRoot))) files.push(file);
  }
  await Promise.all(files.map(compile));
  for (const project of projects) if (project.type === 'library') await linkLibrary(project);
  return { projects: projects.length, files: files.length, seconds: (performance.now() - started) / 1000 };
}
