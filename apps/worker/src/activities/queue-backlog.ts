import { Injectable, Logger } from '@nestjs/common';
import { CloudWatchClient, PutMetricDataCommand } from '@aws-sdk/client-cloudwatch';
import { Client } from '@temporalio/client';
import { KilnConfig } from '@kiln/config';
import { TARGETS, taskQueueFor } from '@kiln/targets';
import { queueBacklogs } from '@kiln/temporal';
import { WorkerMetrics } from '../metrics/worker-metrics.js';

/** The CloudWatch call the publisher makes (a seam for its unit test). */
export type PutMetricData = (command: PutMetricDataCommand) => Promise<unknown>;

/**
 * Measures the backlog of every build queue of the catalog (the `kiln-queue-backlog` schedule runs it every
 * KILN_BACKLOG_INTERVAL_S) and publishes it: as the gauge `kiln_build_queue_backlog` of this orchestrator's /metrics,
 * and, where KILN_CLOUDWATCH_NAMESPACE is set (the AWS deployment), as the CloudWatch metric BuildQueueBacklog
 * (dimension Queue) on which infra/terraform/autoscaling.tf scales each build pool, from zero hosts up.
 */
@Injectable()
export class QueueBacklogPublisher {
  private readonly logger = new Logger(QueueBacklogPublisher.name);
  private put?: PutMetricData;

  constructor(
    private readonly temporal: Client,
    private readonly config: KilnConfig,
    private readonly metrics: WorkerMetrics,
  ) {}

  /** For the unit test: where the CloudWatch data goes instead of the AWS SDK's client. */
  usePutMetricData(put: PutMetricData): void {
    this.put = put;
  }

  async publish(now = new Date()): Promise<Record<string, number>> {
    const queues = [...new Set(TARGETS.map((t) => taskQueueFor(t.id)))];
    const backlogs = await queueBacklogs(this.temporal, queues);
    for (const [queue, tasks] of backlogs) this.metrics.queueBacklog.set({ queue }, tasks);
    const namespace = this.config.KILN_CLOUDWATCH_NAMESPACE;
    if (namespace) {
      if (!this.put) {
        const cloudwatch = new CloudWatchClient({});
        this.put = (command) => cloudwatch.send(command);
      }
      // Every queue, zeros included: the scale-in alarm needs data points to see an empty queue.
      await this.put(
        new PutMetricDataCommand({
          Namespace: namespace,
          MetricData: [...backlogs].map(([queue, tasks]) => ({
            MetricName: 'BuildQueueBacklog',
            Dimensions: [{ Name: 'Queue', Value: queue }],
            Timestamp: now,
            Unit: 'Count',
            Value: tasks,
          })),
        }),
      );
    }
    const waiting = [...backlogs].filter(([, tasks]) => tasks > 0);
    if (waiting.length > 0)
      this.logger.log(`Build queues with a backlog: ${waiting.map(([q, n]) => `${q}=${n}`).join(', ')}`);
    return Object.fromEntries(backlogs);
  }
}
