import { Logger } from '@nestjs/common';
import type { Logger as TemporalLogger, LogLevel, LogMetadata } from '@temporalio/common';
import { Runtime } from '@temporalio/worker';
import { freeLoopbackPort } from '@kiln/core';

/**
 * Installs the Temporal SDK's runtime once, before anything creates it (the first NativeConnection or Worker would,
 * with stderr logging and no metrics): its log lines go through Nest's logger (so they are structured like Kiln's
 * own), and with `metrics` its Prometheus exporter listens on a loopback port of its own (the kernel's pick); the
 * returned scrape of it is what the worker's /metrics appends to its own text (names start `temporal_`: task slots,
 * poll and schedule-to-start latencies, activity execution latency...). Null without metrics.
 */
export async function installTemporalRuntime(options: { metrics: boolean }): Promise<(() => Promise<string>) | null> {
  const port = options.metrics ? await freeLoopbackPort() : null;
  Runtime.install({
    logger: new NestTemporalLogger(),
    ...(port
      ? {
          telemetryOptions: {
            metrics: {
              prometheus: { bindAddress: `127.0.0.1:${port}`, countersTotalSuffix: true, useSecondsForDurations: true },
            },
          },
        }
      : {}),
  });
  if (!port) return null;
  return async () => {
    const res = await fetch(`http://127.0.0.1:${port}/metrics`);
    if (!res.ok) throw new Error(`the Temporal runtime's metrics answered HTTP ${res.status}`);
    return res.text();
  };
}

/** The SDK's log lines as Nest log lines (context `Temporal`), their metadata as fields. */
class NestTemporalLogger implements TemporalLogger {
  private readonly logger = new Logger('Temporal');

  log(level: LogLevel, message: string, meta: LogMetadata = {}): void {
    // An object first: the structured logger takes its keys as fields and `msg` as the message.
    const line = { msg: message, ...meta };
    if (level === 'ERROR') this.logger.error(line);
    else if (level === 'WARN') this.logger.warn(line);
    else if (level === 'INFO') this.logger.log(line);
    else if (level === 'DEBUG') this.logger.debug(line);
    else this.logger.verbose(line);
  }
  trace(message: string, meta?: LogMetadata): void {
    this.log('TRACE', message, meta);
  }
  debug(message: string, meta?: LogMetadata): void {
    this.log('DEBUG', message, meta);
  }
  info(message: string, meta?: LogMetadata): void {
    this.log('INFO', message, meta);
  }
  warn(message: string, meta?: LogMetadata): void {
    this.log('WARN', message, meta);
  }
  error(message: string, meta?: LogMetadata): void {
    this.log('ERROR', message, meta);
  }
}
