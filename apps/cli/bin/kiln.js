#!/usr/bin/env node
// The `kiln` command (npx kiln from the repo, or this workspace's bin). The CLI is TypeScript run through SWC,
// like every Kiln process; the loader and the tsconfig are found relative to this file, so `kiln` works from
// any folder.
/* global process, URL */
import { register } from 'node:module';
import { fileURLToPath } from 'node:url';

process.env.SWC_NODE_PROJECT ??= fileURLToPath(new URL('../../../tsconfig.json', import.meta.url));
register('@swc-node/register/esm', import.meta.url);
await import('../src/main.ts');
