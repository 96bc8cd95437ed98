import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

describe("the SDK's generated API types (libs/sdk/src/generated/openapi.ts)", () => {
  it("match the API's OpenAPI document as the code builds it now", async () => {
    // A separate process: building the document loads the whole API's module graph.
    const check = promisify(execFile)(
      process.execPath,
      ['--import', '@swc-node/register/esm-register', 'scripts/generate-api-types.ts', '--check'],
      { cwd: REPO_ROOT },
    );
    await assert.doesNotReject(check, 'out of date: run `npm run generate:api-types` and commit the result');
  });
});
