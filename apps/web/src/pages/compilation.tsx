import { useMutation, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { Link, useNavigate, useParams } from 'react-router';
import { compilationQuery, queryKeys, useVersionWithModel } from '../api/queries.js';
import { useApi } from '../api/session.js';
import type { Compilation } from '../api/types.js';
import { BuildCard } from '../components/build-card.js';
import { AlertIcon, RefreshIcon, StopIcon } from '../components/icons.js';
import { PageHeader, useDocumentTitle } from '../components/layout.js';
import { ErrorCallout, LoadingBlock, PageError, Skeleton, StatusBadge } from '../components/ui.js';
import { formatDate, plural, relativeTime } from '../lib/format.js';
import { buildStatusInfo, compilationStatusInfo, retryableTargets } from '../lib/status.js';
import { type LiveMode, useLiveCompilation } from '../live/use-compilation.js';
import { randomId } from '../upload/sha256.js';

export function CompilationPage() {
  const { compilationId = '' } = useParams();
  const api = useApi();
  const queryClient = useQueryClient();
  const navigate = useNavigate();
  const live = useLiveCompilation(api, compilationId);
  const c = live.compilation;
  const { version: v, model: m } = useVersionWithModel(api, c?.modelVersionId);
  const [confirmCancel, setConfirmCancel] = useState(false);
  useDocumentTitle(m && v ? `Compilation of ${m.name} v${v.number}` : 'Compilation');

  const cancel = useMutation({
    mutationFn: () => api.post<Compilation>(`/v1/compilations/${compilationId}/cancel`),
    onSuccess: (cancelled) => {
      queryClient.setQueryData(compilationQuery(api, compilationId).queryKey, cancelled);
      // The lists (version page, models page) show its status too.
      void queryClient.invalidateQueries({ queryKey: queryKeys.compilationLists() });
    },
    onSettled: () => setConfirmCancel(false),
  });
  const retryFailed = useMutation({
    mutationFn: (retry: { versionId: string; targets: string[] }) =>
      api.post<Compilation>(
        `/v1/versions/${retry.versionId}/compilations`,
        { targets: retry.targets },
        { headers: { 'Idempotency-Key': `web-retry-${randomId()}` } },
      ),
    onSuccess: (next) => {
      void queryClient.invalidateQueries({ queryKey: queryKeys.compilationLists() });
      void navigate(`/compilations/${next.id}`);
    },
  });

  if (live.error && !c) return <PageError error={live.error} />;

  const info = c ? compilationStatusInfo(c.status) : null;
  const retry = c && !info?.active ? retryableTargets(c.builds) : [];
  const busy = cancel.isPending ? 'cancel' : retryFailed.isPending ? 'retry' : null;
  const actionError = cancel.error ?? retryFailed.error;
  const startCancel = (): void => {
    retryFailed.reset();
    cancel.mutate();
  };
  const startRetry = (): void => {
    if (!c) return;
    cancel.reset();
    retryFailed.mutate({ versionId: c.modelVersionId, targets: retry });
  };

  const counts = c ? summarize(c) : '';

  return (
    <div className="page">
      <PageHeader
        crumbs={[
          { label: 'Models', to: '/' },
          { label: m?.name ?? '…', to: m ? `/models/${m.id}` : undefined },
          { label: v ? `v${v.number}` : '…', to: v ? `/versions/${v.id}` : undefined },
          { label: 'Compilation' },
        ]}
        title={m && v ? `Compilation of ${m.name} v${v.number}` : <Skeleton width={280} height={30} />}
        badge={
          info ? (
            <span className="title-badges">
              <StatusBadge info={info} />
              <LiveIndicator mode={live.mode} />
            </span>
          ) : undefined
        }
        subtitle={
          c ? (
            <>
              Started {relativeTime(c.createdAt)} ({formatDate(c.createdAt)}) · {plural(c.targets.length, 'target')} ·{' '}
              <span aria-live="polite">{counts}</span>
            </>
          ) : (
            <Skeleton width={320} />
          )
        }
        actions={
          c && (
            <>
              {info?.active &&
                (confirmCancel ? (
                  <span className="confirm-inline" role="group" aria-label="Confirm cancel">
                    <span className="small">Cancel every running build?</span>
                    <button
                      type="button"
                      className="btn btn-danger btn-sm"
                      disabled={busy !== null}
                      onClick={startCancel}
                    >
                      {busy === 'cancel' ? 'Cancelling…' : 'Yes, cancel'}
                    </button>
                    <button
                      type="button"
                      className="btn btn-ghost btn-sm"
                      onClick={() => setConfirmCancel(false)}
                      autoFocus
                    >
                      Keep building
                    </button>
                  </span>
                ) : (
                  <button type="button" className="btn btn-secondary" onClick={() => setConfirmCancel(true)}>
                    <StopIcon size={15} /> Cancel
                  </button>
                ))}
              {retry.length > 0 && (
                <button type="button" className="btn btn-primary" disabled={busy !== null} onClick={startRetry}>
                  <RefreshIcon size={15} />{' '}
                  {busy === 'retry' ? 'Starting…' : `Retry ${plural(retry.length, 'failed target')}`}
                </button>
              )}
              <Link to={`/versions/${c.modelVersionId}/artifacts`} className="btn btn-secondary">
                Artifacts
              </Link>
            </>
          )
        }
      />
      {actionError && <ErrorCallout error={actionError} title="That did not work" />}
      {live.error && c && <ErrorCallout error={live.error} title="Lost track of this compilation" />}
      {c && c.warnings.length > 0 && (
        <div className="callout callout-warning" role="status" data-testid="no-worker-warning">
          <AlertIcon size={20} className="callout-icon" />
          <div className="callout-body">
            <p className="callout-title">No worker for {c.warnings.map((w) => w.targetId).join(', ')}</p>
            <p>{c.warnings[0].message}</p>
          </div>
        </div>
      )}

      {!c ? (
        <div className="build-grid">
          {[0, 1, 2].map((i) => (
            <div key={i} className="build-card">
              <LoadingBlock lines={5} label="Loading builds" />
            </div>
          ))}
        </div>
      ) : (
        <div className="build-grid">
          {c.builds.map((b) => (
            <BuildCard key={b.targetId} build={b} compilationId={c.id} versionId={c.modelVersionId} />
          ))}
        </div>
      )}
    </div>
  );
}

function summarize(c: Compilation): string {
  const groups = new Map<string, number>();
  for (const b of c.builds) {
    const label = buildStatusInfo(b.status).label.toLowerCase();
    groups.set(label, (groups.get(label) ?? 0) + 1);
  }
  return [...groups].map(([label, n]) => `${n} ${label}`).join(', ');
}

/** Whether the page is listening live, polling, or done. */
function LiveIndicator({ mode }: { mode: LiveMode }) {
  const text: Record<LiveMode, string> = {
    connecting: 'Connecting…',
    live: 'Live',
    polling: 'Updating every 3 s',
    done: 'Final',
  };
  return (
    <span
      className={`live-indicator live-${mode}`}
      title={mode === 'live' ? 'Updates arrive as server-sent events' : undefined}
    >
      <span className="live-dot" aria-hidden="true" />
      {text[mode]}
    </span>
  );
}
