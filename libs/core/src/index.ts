export * from './blob-ledger.js';
export * from './core.module.js';
export * from './deletions.js';
export * from './object-storage-for.js';
export * from './retention.js';
export * from './storage.module.js';
export * from './webhooks.js';
export * from './upload-sweeper.js';
