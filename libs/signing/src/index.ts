export * from './artifact-signer.js';
