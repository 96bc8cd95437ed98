// The workflow bundle's entry point (the worker's workflowsPath): workflow functions only.
export { compileModelWorkflow, progressQuery } from './compile-model.workflow.js';
