export * from './catalog.js';
export * from './x86-levels.js';
