export * from './blob-ledger.js';
export * from './core.module.js';
export * from './object-storage-for.js';
export * from './storage.module.js';
export * from './upload-sweeper.js';
