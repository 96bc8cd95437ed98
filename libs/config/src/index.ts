export * from './kiln-config.js';
