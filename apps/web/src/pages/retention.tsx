import { type FormEvent, useEffect, useId, useState } from 'react';
import { Link } from 'react-router';
import { ApiError, toApiError } from '../api/client.js';
import { useApi } from '../api/session.js';
import type { RetentionPolicy, RetentionRun } from '../api/types.js';
import { useResource } from '../api/use-resource.js';
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
  const policy = useResource(
    (signal) =>
      api.get<RetentionPolicy>('/v1/retention-policy', { signal }).catch((err: unknown) => {
        if (err instanceof ApiError && err.status === 404) return null;
        throw err;
      }),
    [api],
  );
  const [keep, setKeep] = useState('');
  const [age, setAge] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const [note, setNote] = useState('');
  const [plan, setPlan] = useState<RetentionRun | null>(null);
  const [applying, setApplying] = useState<{ busy: boolean; error: ApiError | null } | null>(null);

  useEffect(() => {
    if (policy.data === undefined) return;
    setKeep(policy.data?.keepLastVersions?.toString() ?? '');
    setAge(policy.data?.maxAgeDays?.toString() ?? '');
  }, [policy.data]);

  const act = async (what: () => Promise<void>): Promise<void> => {
    setBusy(true);
    setError(null);
    setNote('');
    try {
      await what();
    } catch (err) {
      setError(toApiError(err));
    } finally {
      setBusy(false);
    }
  };

  const save = (e: FormEvent): void => {
    e.preventDefault();
    void act(async () => {
      const saved = await api.put<RetentionPolicy>('/v1/retention-policy', {
        keepLastVersions: ruleOf(keep),
        maxAgeDays: ruleOf(age),
      });
      policy.setData(saved);
      setNote('Policy saved. The orchestrator applies it on its schedule.');
    });
  };

  const preview = (): void =>
    void act(async () => {
      setPlan(
        await api.post<RetentionRun>('/v1/retention-policy/runs', {
          dryRun: true,
          keepLastVersions: ruleOf(keep),
          maxAgeDays: ruleOf(age),
        }),
      );
    });

  const remove = (): void =>
    void act(async () => {
      await api.delete('/v1/retention-policy');
      policy.setData(null);
      setPlan(null);
      setNote('Policy removed: every version is kept.');
    });

  const applyNow = async (): Promise<void> => {
    setApplying({ busy: true, error: null });
    try {
      const run = await api.post<RetentionRun>('/v1/retention-policy/runs', { dryRun: false });
      setPlan(run);
      setApplying(null);
    } catch (err) {
      setApplying({ busy: false, error: toApiError(err) });
    }
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
            <ErrorCallout error={policy.error} title="Could not load the policy" onRetry={policy.reload} />
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
                    onClick={() => setApplying({ busy: false, error: null })}
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
        open={applying !== null}
        title="Apply the retention policy now?"
        confirmLabel="Delete old versions"
        busy={applying?.busy ?? false}
        error={applying?.error ?? null}
        onConfirm={() => void applyNow()}
        onClose={() => setApplying(null)}
      >
        <p>
          The versions the saved policy lets go are deleted with their artifacts and files. Versions a channel or a
          rollout points at, or a compilation works on, stay.
        </p>
      </ConfirmDialog>
    </div>
  );
}
