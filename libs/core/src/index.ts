export * from './core.module.js';
export * from './object-storage-for.js';
export * from './storage.module.js';
