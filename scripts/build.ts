// `npm run build`: compiles the API, the worker and their libraries into dist/ (see scripts/lib/build-dist.ts).
//   node --import @swc-node/register/esm-register scripts/build.ts
import { buildDist } from './lib/build-dist.js';

const { projects, files, seconds } = await buildDist();
console.log(`built ${projects} projects (${files} files) into dist/ in ${seconds.toFixed(1)}s`);
