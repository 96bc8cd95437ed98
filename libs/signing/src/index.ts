export * from './artifact-signer.js';
export * from './portable-manifest.js';
export * from './signing-keys.js';
