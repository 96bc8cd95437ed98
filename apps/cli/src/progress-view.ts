import cliProgress from 'cli-progress';
import type { ProgressEvent } from '@kiln/sdk';
import { BUILD_PHASES, buildStep, describeBuild } from './build-steps.js';
import { formatBytes } from './format.js';

/** How `kiln compile` shows progress: live bars on a terminal, plain lines in CI logs, nothing with --json. */
export interface ProgressView {
  onEvent(event: ProgressEvent): void;
  /** A line that must not be torn by the bars. */
  log(line: string): void;
  stop(): void;
}

export function progressView(
  mode: 'tty' | 'plain' | 'silent',
  out: NodeJS.WritableStream = process.stderr,
): ProgressView {
  switch (mode) {
    case 'tty':
      return new BarsView(out);
    case 'plain':
      return new LinesView(out);
    case 'silent':
      return { onEvent: () => undefined, log: () => undefined, stop: () => undefined };
  }
}

class BarsView implements ProgressView {
  private readonly bars: cliProgress.MultiBar;
  private upload?: cliProgress.SingleBar;
  private readonly targets = new Map<string, { bar: cliProgress.SingleBar; step: number }>();
  private readonly started = Date.now();

  constructor(out: NodeJS.WritableStream) {
    this.bars = new cliProgress.MultiBar(
      {
        stream: out,
        format: ' {label} |{bar}| {state}',
        barsize: 30,
        hideCursor: true,
        clearOnComplete: false,
        stopOnComplete: false,
        autopadding: true,
        fps: 10,
      },
      cliProgress.Presets.shades_classic,
    );
  }

  onEvent(e: ProgressEvent): void {
    switch (e.type) {
      case 'upload': {
        this.upload ??= this.bars.create(e.totalBytes, 0, { label: pad('upload'), state: '' });
        const seconds = Math.max(0.001, (Date.now() - this.started) / 1000);
        const rate = (e.uploadedBytes - e.resumedBytes) / seconds;
        this.upload.update(e.uploadedBytes, {
          state:
            `${formatBytes(e.uploadedBytes)} of ${formatBytes(e.totalBytes)}, part ${e.partsDone}/${e.partCount}` +
            (rate > 0 ? `, ${formatBytes(rate)}/s` : '') +
            (e.resumedBytes ? ` (resumed: ${formatBytes(e.resumedBytes)} already there)` : ''),
        });
        break;
      }
      case 'upload-completing':
        this.upload?.update({ state: 'validating the archive ...' });
        break;
      case 'uploaded':
        this.upload ??= this.bars.create(e.sizeBytes, e.sizeBytes, { label: pad('upload'), state: '' });
        this.upload.update(e.sizeBytes, { state: e.reused ? 'already uploaded' : `done: version ${e.versionId}` });
        break;
      case 'build': {
        let t = this.targets.get(e.targetId);
        if (!t) {
          t = { bar: this.bars.create(BUILD_PHASES.length - 1, 0, { label: pad(e.targetId), state: '' }), step: 0 };
          this.targets.set(e.targetId, t);
        }
        t.step = buildStep(e.build, t.step);
        t.bar.update(t.step, { state: describeBuild(e.build) });
        break;
      }
      case 'compilation':
      case 'retry':
        break;
    }
  }

  log(line: string): void {
    this.bars.log(`${line}\n`);
  }

  stop(): void {
    this.bars.stop();
  }
}

class LinesView implements ProgressView {
  private lastPercent = -1;
  private lastAt = 0;

  constructor(private readonly out: NodeJS.WritableStream) {}

  onEvent(e: ProgressEvent): void {
    switch (e.type) {
      case 'upload': {
        const percent = e.totalBytes ? Math.floor((100 * e.uploadedBytes) / e.totalBytes) : 100;
        // Every 10% or 15 s, whichever comes first: CI logs stay short.
        if (percent >= this.lastPercent + 10 || (Date.now() - this.lastAt > 15_000 && percent !== this.lastPercent)) {
          this.lastPercent = percent;
          this.lastAt = Date.now();
          this.log(
            `upload ${percent}% (${formatBytes(e.uploadedBytes)} of ${formatBytes(e.totalBytes)}, part ${e.partsDone}/${e.partCount})` +
              (e.resumedBytes ? `, resumed with ${formatBytes(e.resumedBytes)} already uploaded` : ''),
          );
        }
        break;
      }
      case 'upload-completing':
        this.log('upload: all parts sent, validating the archive');
        break;
      case 'uploaded':
        this.log(`uploaded: version ${e.versionId}${e.reused ? ' (already uploaded earlier)' : ''}`);
        break;
      case 'compilation':
        this.log(`compilation ${e.compilationId}: ${e.status}${e.created ? '' : ''}`);
        break;
      case 'build':
        this.log(`  ${e.targetId}: ${describeBuild(e.build)}`);
        break;
      case 'retry':
        this.log(`retrying ${e.what} (attempt ${e.attempt}, in ${e.delayMs} ms): ${e.error}`);
        break;
    }
  }

  log(line: string): void {
    this.out.write(`${line}\n`);
  }

  stop(): void {}
}

function pad(label: string): string {
  return label.padEnd(24);
}
