import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { type FormEvent, useEffect, useId, useState } from 'react';
import { useNavigate } from 'react-router';
import { queryKeys, targetsQuery } from '../api/queries.js';
import { useApi } from '../api/session.js';
import type { Compilation } from '../api/types.js';
import { randomId } from '../upload/sha256.js';
import { AlertIcon, CpuIcon, RefreshIcon } from './icons.js';
import { ErrorCallout, LoadingBlock } from './ui.js';

/**
 * Pick targets (GET /v1/targets) and start a compilation. Targets with a worker online are picked by
 * default; offline ones can be picked too (a worker may come), with a warning of what happens if none does.
 */
export function CompileForm({ versionId }: { versionId: string }) {
  const api = useApi();
  const navigate = useNavigate();
  const queryClient = useQueryClient();
  const targets = useQuery(targetsQuery(api));
  const [picked, setPicked] = useState<Set<string> | null>(null);
  const legendId = useId();

  // Default: every target a worker serves right now.
  useEffect(() => {
    if (targets.data && picked === null)
      setPicked(new Set(targets.data.filter((t) => t.workerOnline).map((t) => t.id)));
  }, [targets.data, picked]);

  const toggle = (id: string, on: boolean): void => {
    const next = new Set(picked ?? []);
    if (on) next.add(id);
    else next.delete(id);
    setPicked(next);
  };

  const startCompilation = useMutation({
    mutationFn: (targetIds: string[]) =>
      api.post<Compilation>(
        `/v1/versions/${versionId}/compilations`,
        { targets: targetIds },
        { headers: { 'Idempotency-Key': `web-${randomId()}` } },
      ),
    onSuccess: (compilation) => {
      void queryClient.invalidateQueries({ queryKey: queryKeys.compilationLists() });
      void navigate(`/compilations/${compilation.id}`);
    },
  });
  // Still busy after success: the page is leaving for the compilation.
  const busy = startCompilation.isPending || startCompilation.isSuccess;
  const error = startCompilation.error;

  const submit = (e: FormEvent): void => {
    e.preventDefault();
    if (!picked || picked.size === 0 || !targets.data) return;
    // Catalog order, so the compilation page lists targets the way this form did.
    startCompilation.mutate(targets.data.map((t) => t.id).filter((id) => picked.has(id)));
  };
  const refetchTargets = (): void => void targets.refetch();

  if (targets.error)
    return <ErrorCallout error={targets.error} title="Could not load the targets" onRetry={refetchTargets} />;
  if (!targets.data || picked === null) return <LoadingBlock lines={4} height={44} label="Loading targets" />;

  const offlinePicked = targets.data.filter((t) => picked.has(t.id) && !t.workerOnline);
  const onlineCount = targets.data.filter((t) => t.workerOnline).length;

  return (
    <form onSubmit={submit} className="compile-form">
      <fieldset className="fieldset">
        <legend id={legendId} className="sr-only">
          Targets to compile for
        </legend>
        <ul className="target-list">
          {targets.data.map((t) => {
            const id = `target-${t.id}`;
            return (
              <li key={t.id} className={t.workerOnline ? 'target-option' : 'target-option offline'}>
                <input
                  id={id}
                  type="checkbox"
                  name="targets"
                  value={t.id}
                  checked={picked.has(t.id)}
                  onChange={(e) => toggle(t.id, e.currentTarget.checked)}
                  aria-describedby={`${id}-desc`}
                />
                <label htmlFor={id} className="target-option-label">
                  <span className="target-option-title">
                    <CpuIcon size={16} /> {t.title}
                  </span>
                  <span className="mono small muted">{t.id}</span>
                </label>
                <span id={`${id}-desc`} className="target-option-meta">
                  <span className="small target-description">{t.description}</span>
                  <span className={t.workerOnline ? 'worker-state online' : 'worker-state'}>
                    <span className="badge-dot" aria-hidden="true" />
                    {t.workerOnline ? 'Worker online' : 'No worker online'}
                  </span>
                </span>
              </li>
            );
          })}
        </ul>
      </fieldset>
      <div className="compile-warning" aria-live="polite">
        {offlinePicked.length > 0 && (
          <p className="callout callout-warning small">
            <AlertIcon size={16} /> No worker serves {offlinePicked.map((t) => t.id).join(', ')} right now. Its build
            waits for one and fails with <code>NO_WORKER</code> if none comes in time.
          </p>
        )}
      </div>
      {error && <ErrorCallout error={error} title="The compilation was not started" />}
      <div className="form-actions">
        <button type="submit" className="btn btn-primary" disabled={busy || picked.size === 0}>
          {busy ? 'Starting…' : `Compile for ${picked.size} target${picked.size === 1 ? '' : 's'}`}
        </button>
        <button
          type="button"
          className="btn btn-ghost btn-sm"
          onClick={refetchTargets}
          title="Check which workers are online"
        >
          <RefreshIcon size={15} /> Refresh workers
        </button>
        <span className="muted small">
          {onlineCount} of {targets.data.length} targets have a worker online
        </span>
      </div>
    </form>
  );
}
