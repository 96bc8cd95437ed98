import { fileURLToPath } from 'node:url';
import {
  makeWorkflowExporter,
  OpenTelemetryActivityInboundInterceptor,
  OpenTelemetryActivityOutboundInterceptor,
} from '@temporalio/interceptors-opentelemetry';
import type { WorkerOptions } from '@temporalio/worker';
import type { KilnTracing } from '@kiln/tracing';

/**
 * The interceptors-opentelemetry module that runs inside the workflow sandbox (bundled with the workflows): it makes
 * the RunWorkflow span from the context the client put in the start headers, and passes that context on to every
 * activity and child workflow the workflow starts.
 */
const WORKFLOW_TRACING_MODULE = fileURLToPath(
  import.meta.resolve('@temporalio/interceptors-opentelemetry/lib/workflow-interceptors'),
);

type TracingOptions = Pick<WorkerOptions, 'interceptors' | 'sinks'>;

/**
 * What a Temporal worker needs to continue traces (the SDK's documented wiring, without its experimental plugin):
 * activity interceptors (a RunActivity span under the workflow's StartActivity span, active while the activity
 * runs) and, for a worker that runs workflows, the workflow interceptors module plus the `exporter` sink through
 * which the sandboxed workflow code hands its spans to this process's span processor. Empty when tracing is off.
 */
export function temporalTracingOptions(tracing: KilnTracing | null, runsWorkflows: boolean): TracingOptions {
  if (!tracing) return {};
  return {
    interceptors: {
      activity: [
        (ctx) => ({
          inbound: new OpenTelemetryActivityInboundInterceptor(ctx),
          outbound: new OpenTelemetryActivityOutboundInterceptor(ctx),
        }),
      ],
      ...(runsWorkflows ? { workflowModules: [WORKFLOW_TRACING_MODULE] } : {}),
    },
    ...(runsWorkflows ? { sinks: { exporter: makeWorkflowExporter(tracing.spanProcessor, tracing.resource) } } : {}),
  };
}
