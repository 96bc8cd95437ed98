export * from './object-keys.js';
export * from './object-storage.js';
