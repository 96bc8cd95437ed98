import { useQuery } from '@tanstack/react-query';
import { useEffect, useId, useRef, useState } from 'react';
import { Link } from 'react-router';
import { buildLogQuery } from '../api/queries.js';
import { useApi } from '../api/session.js';
import type { Build } from '../api/types.js';
import { formatBytes, formatDuration, formatError, formatSpeedup } from '../lib/format.js';
import { BUILD_PHASES, buildStatusInfo, phaseIndex, phaseLabel } from '../lib/status.js';
import { LogIcon } from './icons.js';
import { ErrorCallout, StatusBadge } from './ui.js';

/** Re-renders every `ms` while `active` (for live elapsed times). */
export function useNow(ms: number, active: boolean): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    if (!active) return;
    const t = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(t);
  }, [ms, active]);
  return now;
}

/** One target's build: status, where it is in the pipeline, attempts, errors, the artifact, the log. */
export function BuildCard({
  build,
  compilationId,
  versionId,
}: {
  build: Build;
  compilationId: string;
  versionId?: string;
}) {
  const info = buildStatusInfo(build.status);
  const now = useNow(1000, info.active && build.startedAt !== null);
  const [showLog, setShowLog] = useState(false);
  const logId = useId();
  const started = build.startedAt ? Date.parse(build.startedAt) : null;
  const finished = build.finishedAt ? Date.parse(build.finishedAt) : null;
  // Clamped: the browser's clock may run behind the server's, or this card mounted before the build started.
  const elapsed = started ? Math.max(0, (finished ?? Math.max(now, Date.now())) - started) : null;
  const current = phaseIndex(build.phase);
  const failedAt = build.status === 'failed' || build.status === 'cancelled';

  return (
    <article className={`build-card tone-${info.tone}`} aria-labelledby={`${logId}-title`} data-target={build.targetId}>
      <header className="build-card-header">
        <h3 id={`${logId}-title`} className="mono">
          {build.targetId}
        </h3>
        <StatusBadge info={info} />
      </header>

      <ol className="phases" aria-label={`Progress of ${build.targetId}`}>
        {BUILD_PHASES.map((p, i) => {
          const state =
            build.status === 'succeeded' || build.status === 'cached' || current === BUILD_PHASES.length
              ? 'done'
              : current === null || current < i
                ? 'todo'
                : current > i
                  ? 'done'
                  : failedAt
                    ? 'failed'
                    : 'current';
          return (
            <li
              key={p.id}
              className={`phase phase-${state}`}
              aria-current={state === 'current' ? 'step' : undefined}
              title={`${p.label}${state === 'done' ? ': done' : state === 'current' ? ': in progress' : state === 'failed' ? ': failed here' : ''}`}
            >
              <span className="phase-bar" aria-hidden="true" />
              <span className="sr-only">
                {p.label}
                {state === 'done'
                  ? ' (done)'
                  : state === 'current'
                    ? ' (in progress)'
                    : state === 'failed'
                      ? ' (failed here)'
                      : ''}
              </span>
            </li>
          );
        })}
      </ol>

      <dl className="build-meta">
        <div>
          <dt>Phase</dt>
          <dd className="build-phase" aria-live="polite">
            {build.status === 'cached' ? 'Reused from the cache' : phaseLabel(build.phase)}
            {current !== null && current >= 0 && current < BUILD_PHASES.length && (
              <span className="muted small step-count">
                step {current + 1} of {BUILD_PHASES.length}
              </span>
            )}
          </dd>
        </div>
        <div>
          <dt>Attempt</dt>
          <dd>
            {build.attempt > 0 ? build.attempt : '—'}
            {build.attempt > 1 && <span className="tag tag-warning">retried</span>}
          </dd>
        </div>
        <div>
          <dt>Time</dt>
          <dd>{elapsed !== null ? formatDuration(elapsed) : '—'}</dd>
        </div>
      </dl>

      {build.errorCode && (
        <ErrorCallout
          error={{ code: build.errorCode, message: build.errorMessage ?? '' }}
          title={build.status === 'cancelled' ? 'Cancelled' : 'Build failed'}
        />
      )}

      {build.artifact && (
        <div className="build-artifact">
          <span>
            <span className="muted small">Speedup</span> <strong>{formatSpeedup(build.artifact.speedup)}</strong>
          </span>
          <span>
            <span className="muted small">Max error</span> {formatError(build.artifact.maxAbsError)}
          </span>
          <span>
            <span className="muted small">Size</span> {formatBytes(build.artifact.sizeBytes)}
          </span>
          {versionId && (
            <Link to={`/versions/${versionId}/artifacts#${build.artifact.id}`} className="small">
              Artifact details
            </Link>
          )}
        </div>
      )}

      <div className="build-actions">
        <button
          type="button"
          className="btn btn-ghost btn-sm"
          aria-expanded={showLog}
          aria-controls={`${logId}-log`}
          onClick={() => setShowLog((s) => !s)}
        >
          <LogIcon size={15} /> {showLog ? 'Hide log' : 'Show log'}
        </button>
      </div>
      {showLog && (
        <BuildLogPanel id={`${logId}-log`} compilationId={compilationId} targetId={build.targetId} live={info.active} />
      )}
    </article>
  );
}

/** The build's log, refreshed every few seconds while the build runs; stays scrolled to the end if it was. */
function BuildLogPanel({
  id,
  compilationId,
  targetId,
  live,
}: {
  id: string;
  compilationId: string;
  targetId: string;
  live: boolean;
}) {
  const api = useApi();
  const pre = useRef<HTMLPreElement>(null);
  // A running build's log grows: ask again every 3 s while it is live.
  const query = useQuery({ ...buildLogQuery(api, compilationId, targetId), refetchInterval: live ? 3000 : false });
  const { refetch } = query;
  // The build just ended: its last lines came after the last poll.
  const wasLive = useRef(live);
  useEffect(() => {
    if (wasLive.current && !live) void refetch();
    wasLive.current = live;
  }, [live, refetch]);
  const log = query.data?.log ?? null;
  const error = query.error?.message ?? null;
  // Keep following the end of the log when the reader was there; leave them where they scrolled otherwise.
  const atEnd = useRef(true);
  useEffect(() => {
    if (atEnd.current && pre.current) pre.current.scrollTop = pre.current.scrollHeight;
  }, [log]);
  const onScroll = (): void => {
    const el = pre.current;
    if (el) atEnd.current = el.scrollHeight - el.scrollTop - el.clientHeight < 24;
  };

  return (
    <div id={id} className="log-panel">
      {error && <p className="field-error">{error}</p>}
      <pre ref={pre} className="log" tabIndex={0} aria-label={`Build log of ${targetId}`} onScroll={onScroll}>
        {log === null ? 'Loading the log…' : log.length === 0 ? 'Nothing logged yet.' : log}
      </pre>
    </div>
  );
}
