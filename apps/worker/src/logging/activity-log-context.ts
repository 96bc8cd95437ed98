import type { ActivityInterceptorsFactory } from '@temporalio/worker';
import { type LogContext, withLogContext } from '@kiln/core';

/** `compile-<compilation id>`: the CompileModel workflow's id (compileWorkflowId). */
const COMPILE_WORKFLOW_ID = /^compile-([0-9a-f-]{36})$/;

/**
 * Every log line an activity writes carries its workflow, activity type and attempt, the compilation of a CompileModel
 * workflow, and the ids its input names (tenant, build, target, compilation): a build's lines can be found by its id
 * in a log collector, whichever worker ran it.
 */
export const activityLogContext: ActivityInterceptorsFactory = (ctx) => ({
  inbound: {
    execute: (input, next) => {
      const { info } = ctx;
      const fields: LogContext = {
        workflowId: info.workflowExecution?.workflowId,
        activity: info.activityType,
        attempt: info.attempt,
        ...idsOf(input.args[0]),
      };
      const compilation = COMPILE_WORKFLOW_ID.exec(fields.workflowId ?? '')?.[1];
      if (compilation && !fields.compilationId) fields.compilationId = compilation;
      return withLogContext(fields, () => next(input));
    },
  },
});

/** The ids an activity's input names, when it is an object that has them as strings. */
function idsOf(arg: unknown): LogContext {
  if (typeof arg !== 'object' || arg === null) return {};
  const a = arg as Record<string, unknown>;
  const ids: LogContext = {};
  for (const key of ['tenantId', 'compilationId', 'buildId', 'targetId'] as const) {
    if (typeof a[key] === 'string') ids[key] = a[key];
  }
  return ids;
}
