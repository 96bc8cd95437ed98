export * from './error-codes.js';
export * from './pt2-summary.js';
export * from './manifest.js';
export * from './statuses.js';
