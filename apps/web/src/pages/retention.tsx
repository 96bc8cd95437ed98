import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { type FormEvent, useEffect, useId, useState } from 'react';
import { Link } from 'react-router';
import { queryKeys, retentionPolicyQuery } from '../api/queries.js';
import { useApi } from '../api/session.js';
import type { RetentionPolicy, RetentionRun } from '../api/types.js';
import { ConfirmDialog } from '../components/confirm-dialog.js';
import { PageHeader, useDocumentTitle } from '../components/layout.js';
import { Card, EmptyState, ErrorCallout, LoadingBlock } from '../components/ui.js';
import { plural, relativeTime } from '../lib/format.js';

/** '' → null (the rule is off); anything else as typed (the API says what is wrong with it). */
const ruleOf = (text: string): number | null => (text.trim() === '' ? null : Number(text));

/**
 * The tenant's retention policy (owners): the rules, a preview of what they would delete (a dry run, also of rules
 * not saved yet), and a run now. The orchestrator applies the saved policy on its own schedule.
 */
export function RetentionPage() {
  useDocumentTitle('Retention');
  const api = useApi();
  const ids = { keep: useId(), age: useId() };
  const queryClient = useQueryClient();
  const policy = useQuery(retentionPolicyQuery(api));
  const [keep, setKeep] = useState('');
  const [age, setAge] = useState('');
  const [note, setNote] = useState('');
  const [plan, setPlan] = useState<RetentionRun | null>(null);
  const [applying, setApplying] = useState(false);

  useEffect(() => {
    if (policy.data === undefined) return;
    setKeep(policy.data?.keepLastVersions?.toString() ?? '');
    setAge(policy.data?.maxAgeDays?.toString() ?? '');
  }, [policy.data]);

  const rules = () => ({ keepLastVersions: ruleOf(keep), maxAgeDays: ruleOf(age) });
  const savePolicy = useMutation({
    mutationFn: (body: ReturnType<typeof rules>) => api.put<RetentionPolicy>('/v1/retention-policy', body),
    onSuccess: (saved) => {
      queryClient.setQueryData(retentionPolicyQuery(api).queryKey, saved);
      setNote('Policy saved. The orchestrator applies it on its schedule.');
    },
  });
  const previewRun = useMutation({
    mutationFn: (body: ReturnType<typeof rules>) =>
      api.post<RetentionRun>('/v1/retention-policy/runs', { dryRun: true, ...body }),
    onSuccess: setPlan,
  });
  const removePolicy = useMutation({
    mutationFn: () => api.delete('/v1/retention-policy'),
    onSuccess: () => {
      queryClient.setQueryData(retentionPolicyQuery(api).queryKey, null);
      setPlan(null);
      setNote('Policy removed: every version is kept.');
    },
  });
  const formActions = [savePolicy, previewRun, removePolicy];
  const busy = formActions.some((a) => a.isPending);
  const error = formActions.find((a) => a.error)?.error ?? null;
  /** The form's actions share one busy state and one error line: starting one clears what the last one said. */
  const startAction = (): void => {
    formActions.forEach((a) => a.reset());
    setNote('');
  };

  const save = (e: FormEvent): void => {
    e.preventDefault();
    startAction();
    savePolicy.mutate(rules());
  };

  const preview = (): void => {
    startAction();
    previewRun.mutate(rules());
  };

  const remove = (): void => {
    startAction();
    removePolicy.mutate();
  };

  const applyPolicy = useMutation({
    mutationFn: () => api.post<RetentionRun>('/v1/retention-policy/runs', { dryRun: false }),
    onSuccess: (run) => {
      setPlan(run);
      closeApply();
      // Versions (and with them compilations and artifacts) may have gone.
      for (const queryKey of [queryKeys.models, queryKeys.versions, queryKeys.compilations])
        void queryClient.invalidateQueries({ queryKey });
    },
  });
  const closeApply = (): void => {
    setApplying(false);
    applyPolicy.reset();
  };

  const saved = policy.data ?? null;
  const unsaved =
    saved?.keepLastVersions?.toString() !== (keep || undefined) || saved?.maxAgeDays?.toString() !== (age || undefined);

  return (
    <div className="page">
      <PageHeader
        title="Retention"
        subtitle="Keep storage from growing forever: old versions go, what a channel points at never does"
      />
      <div className="grid-main-side">
        <Card title="What would go" className="table-card">
          {!plan ? (
            <EmptyState title="No preview yet">Preview the rules to see which versions they would delete.</EmptyState>
          ) : plan.versions.length === 0 ? (
            <EmptyState title={plan.dryRun ? 'Nothing would go' : 'Nothing went'}>
              {plural(plan.kept, 'version')} kept.
            </EmptyState>
          ) : (
            <div className="table-scroll">
              <p className="card-pad muted small" role="status">
                {plan.dryRun
                  ? `${plural(plan.versions.length, 'version')} would be deleted, ${plan.kept} kept.`
                  : `Deleted ${plan.versions.filter((v) => v.outcome === 'deleted').length}, kept ${plan.kept}.`}
              </p>
              <table className="table" aria-label="Versions the policy deletes">
                <thead>
                  <tr>
                    <th scope="col">Model</th>
                    <th scope="col">Version</th>
                    <th scope="col">Uploaded</th>
                    <th scope="col">Outcome</th>
                  </tr>
                </thead>
                <tbody>
                  {plan.versions.map((v) => (
                    <tr key={v.versionId}>
                      <td>
                        <Link to={`/models/${v.modelId}`}>{v.modelName}</Link>
                      </td>
                      <td>v{v.number}</td>
                      <td className="muted">{relativeTime(v.createdAt)}</td>
                      <td>
                        {v.outcome.replace('_', ' ')}
                        {v.reason ? ` (${v.reason})` : ''}
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
        </Card>

        <Card title="Policy">
          {policy.error ? (
            <ErrorCallout
              error={policy.error}
              title="Could not load the policy"
              onRetry={() => void policy.refetch()}
            />
          ) : policy.data === undefined ? (
            <div className="card-pad">
              <LoadingBlock lines={2} label="Loading the policy" />
            </div>
          ) : (
            <form className="card-pad stack" onSubmit={save} noValidate>
              <p className="muted small">
                {saved
                  ? 'A version stays while either rule keeps it.'
                  : 'No policy: every version is kept. Set a rule (or both) to save one.'}
              </p>
              <div className="field">
                <label htmlFor={ids.keep}>Keep each model’s last N versions</label>
                <input
                  id={ids.keep}
                  className="input"
                  inputMode="numeric"
                  value={keep}
                  placeholder="off"
                  onChange={(e) => setKeep(e.currentTarget.value)}
                />
              </div>
              <div className="field">
                <label htmlFor={ids.age}>Keep versions younger than D days</label>
                <input
                  id={ids.age}
                  className="input"
                  inputMode="numeric"
                  value={age}
                  placeholder="off"
                  onChange={(e) => setAge(e.currentTarget.value)}
                />
              </div>
              {error && <ErrorCallout error={error} title="That did not work" />}
              <p className="callout-inline-success" role="status">
                {note}
              </p>
              <div className="form-actions">
                <button type="button" className="btn btn-secondary" disabled={busy} onClick={preview}>
                  Preview
                </button>
                <button type="submit" className="btn btn-primary" disabled={busy}>
                  Save policy
                </button>
              </div>
              {saved && (
                <div className="form-actions">
                  <button
                    type="button"
                    className="btn btn-danger"
                    disabled={busy || unsaved}
                    title={unsaved ? 'Save the rules first' : undefined}
                    onClick={() => setApplying(true)}
                  >
                    Apply now
                  </button>
                  <button type="button" className="btn btn-ghost" disabled={busy} onClick={remove}>
                    Remove policy
                  </button>
                </div>
              )}
            </form>
          )}
        </Card>
      </div>

      <ConfirmDialog
        open={applying}
        title="Apply the retention policy now?"
        confirmLabel="Delete old versions"
        busy={applyPolicy.isPending}
        error={applyPolicy.error}
        onConfirm={() => applyPolicy.mutate()}
        onClose={closeApply}
      >
        <p>
          The versions the saved policy lets go are deleted with their artifacts and files. Versions a channel or a
          rollout points at, or a compilation works on, stay.
        </p>
      </ConfirmDialog>
    </div>
  );
}
