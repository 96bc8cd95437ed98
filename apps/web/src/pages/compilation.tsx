import { useState } from 'react';
import { Link, useNavigate, useParams } from 'react-router';
import { ApiError, toApiError } from '../api/client.js';
import { useApi } from '../api/session.js';
import type { Compilation, Model, ModelVersion } from '../api/types.js';
import { useResource } from '../api/use-resource.js';
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
  const navigate = useNavigate();
  const live = useLiveCompilation(api, compilationId);
  const c = live.compilation;
  const versionId = c?.modelVersionId;
  const context = useResource(
    async (signal) => {
      if (!versionId) return null;
      const v = await api.get<ModelVersion>(`/v1/versions/${versionId}`, { signal });
      const m = await api.get<Model>(`/v1/models/${v.modelId}`, { signal });
      return { version: v, model: m };
    },
    [api, versionId],
  );
  const [confirmCancel, setConfirmCancel] = useState(false);
  const [busy, setBusy] = useState<'cancel' | 'retry' | null>(null);
  const [actionError, setActionError] = useState<ApiError | null>(null);
  const v = context.data?.version;
  const m = context.data?.model;
  useDocumentTitle(m && v ? `Compilation of ${m.name} v${v.number}` : 'Compilation');

  if (live.error && !c) return <PageError error={live.error} />;

  const info = c ? compilationStatusInfo(c.status) : null;
  const retry = c && !info?.active ? retryableTargets(c.builds) : [];

  const cancel = async (): Promise<void> => {
    setBusy('cancel');
    setActionError(null);
    try {
      live.update(await api.post<Compilation>(`/v1/compilations/${compilationId}/cancel`));
    } catch (err) {
      setActionError(toApiError(err));
    } finally {
      setBusy(null);
      setConfirmCancel(false);
    }
  };

  const retryFailed = async (): Promise<void> => {
    if (!c) return;
    setBusy('retry');
    setActionError(null);
    try {
      const next = await api.post<Compilation>(
        `/v1/versions/${c.modelVersionId}/compilations`,
        { targets: retry },
        { headers: { 'Idempotency-Key': `web-retry-${randomId()}` } },
      );
      void navigate(`/compilations/${next.id}`);
    } catch (err) {
      setActionError(toApiError(err));
    } finally {
      setBusy(null);
    }
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
                      onClick={() => void cancel()}
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
                <button
                  type="button"
                  className="btn btn-primary"
                  disabled={busy !== null}
                  onClick={() => void retryFailed()}
                >
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
