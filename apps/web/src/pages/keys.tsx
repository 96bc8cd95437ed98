import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { type FormEvent, useId, useState } from 'react';
import { apiKeysQuery, queryKeys } from '../api/queries.js';
import { useApi } from '../api/session.js';
import type { ApiKeyRole, ApiKeySummary, ApiKeyWithSecret } from '../api/types.js';
import { ConfirmDialog } from '../components/confirm-dialog.js';
import { PageHeader, useDocumentTitle } from '../components/layout.js';
import { Badge, Card, ErrorCallout, LoadingBlock, PageError } from '../components/ui.js';
import { relativeTime } from '../lib/format.js';

const ROLES: { role: ApiKeyRole; does: string }[] = [
  { role: 'owner', does: 'everything, and alone keys, deletes, retention and the audit log' },
  { role: 'developer', does: 'upload, compile, channels and rollouts' },
  { role: 'viewer', does: 'read only' },
  { role: 'device', does: 'resolve, download and report telemetry for the models it is enrolled for' },
];

const EXPIRIES: { label: string; seconds: number | null }[] = [
  { label: 'Never', seconds: null },
  { label: '1 day', seconds: 86_400 },
  { label: '30 days', seconds: 30 * 86_400 },
  { label: '90 days', seconds: 90 * 86_400 },
];

function keyState(k: ApiKeySummary, now = Date.now()): { label: string; tone: 'neutral' | 'success' | 'danger' } {
  if (k.revokedAt) return { label: 'revoked', tone: 'danger' };
  if (k.expiresAt && Date.parse(k.expiresAt) <= now) return { label: 'expired', tone: 'neutral' };
  return { label: 'active', tone: 'success' };
}

/** The tenant's keys (owners): who can do what, a new key shown once, revocation that takes effect at once. */
export function KeysPage() {
  useDocumentTitle('API keys');
  const api = useApi();
  const queryClient = useQueryClient();
  const keys = useQuery(apiKeysQuery(api));
  const ids = { name: useId(), role: useId(), expiry: useId(), models: useId() };
  const [name, setName] = useState('');
  const [role, setRole] = useState<ApiKeyRole>('viewer');
  const [expiry, setExpiry] = useState(0);
  const [models, setModels] = useState('*');
  const [revoking, setRevoking] = useState<ApiKeySummary | null>(null);

  const createKey = useMutation({
    mutationFn: (body: Record<string, unknown>) => api.post<ApiKeyWithSecret>('/v1/keys', body),
    onSuccess: () => {
      setName('');
      void queryClient.invalidateQueries({ queryKey: queryKeys.apiKeys });
    },
  });
  const busy = createKey.isPending;
  const error = createKey.error;
  const created = createKey.data ?? null;

  const create = (e: FormEvent): void => {
    e.preventDefault();
    const seconds = EXPIRIES[expiry].seconds;
    createKey.mutate({
      name: name.trim() || undefined,
      role,
      ...(role === 'device'
        ? {
            models: models
              .split(',')
              .map((m) => m.trim())
              .filter(Boolean),
          }
        : {}),
      ...(seconds === null ? {} : { expiresInSeconds: seconds }),
    });
  };

  const revokeKey = useMutation({
    mutationFn: (key: ApiKeySummary) => api.delete(`/v1/keys/${key.id}`),
    onSuccess: () => {
      closeRevoke();
      void queryClient.invalidateQueries({ queryKey: queryKeys.apiKeys });
    },
  });
  const closeRevoke = (): void => {
    setRevoking(null);
    revokeKey.reset();
  };

  return (
    <div className="page">
      <PageHeader title="API keys" subtitle="Who can reach this tenant, and what each key may do" />
      <div className="grid-main-side">
        <Card title="Keys" className="table-card">
          {keys.error ? (
            <PageError error={keys.error} onRetry={() => void keys.refetch()} />
          ) : !keys.data ? (
            <div className="card-pad">
              <LoadingBlock lines={3} label="Loading keys" />
            </div>
          ) : (
            <div className="table-scroll">
              <table className="table" aria-label="API keys">
                <thead>
                  <tr>
                    <th scope="col">Name</th>
                    <th scope="col">Role</th>
                    <th scope="col">Key</th>
                    <th scope="col">State</th>
                    <th scope="col">Expires</th>
                    <th scope="col">Created</th>
                    <th scope="col">
                      <span className="sr-only">Actions</span>
                    </th>
                  </tr>
                </thead>
                <tbody>
                  {keys.data.map((k) => {
                    const state = keyState(k);
                    return (
                      <tr key={k.id}>
                        <td>{k.name || <span className="muted">unnamed</span>}</td>
                        <td>
                          <span className="tag">{k.role}</span>
                          {k.role === 'device' && <span className="muted small"> {k.models.join(', ')}</span>}
                        </td>
                        <td className="mono small">{k.prefix}…</td>
                        <td>
                          <Badge tone={state.tone}>{state.label}</Badge>
                        </td>
                        <td className="muted">{k.expiresAt ? relativeTime(k.expiresAt) : 'never'}</td>
                        <td className="muted">{relativeTime(k.createdAt)}</td>
                        <td>
                          {state.label === 'active' && (
                            <button
                              type="button"
                              className="btn btn-ghost btn-sm"
                              aria-label={`Revoke ${k.name || k.prefix}`}
                              onClick={() => setRevoking(k)}
                            >
                              Revoke
                            </button>
                          )}
                        </td>
                      </tr>
                    );
                  })}
                </tbody>
              </table>
            </div>
          )}
        </Card>

        <Card title="New key">
          <form className="card-pad stack" onSubmit={create} noValidate>
            <div className="field">
              <label htmlFor={ids.name}>Name</label>
              <input
                id={ids.name}
                className="input"
                value={name}
                maxLength={200}
                placeholder="ci, contractor, edge fleet…"
                onChange={(e) => setName(e.currentTarget.value)}
              />
            </div>
            <div className="field">
              <label htmlFor={ids.role}>Role</label>
              <select
                id={ids.role}
                className="input"
                value={role}
                onChange={(e) => setRole(e.currentTarget.value as ApiKeyRole)}
              >
                {ROLES.map((r) => (
                  <option key={r.role} value={r.role}>
                    {r.role}: {r.does}
                  </option>
                ))}
              </select>
            </div>
            {role === 'device' && (
              <div className="field">
                <label htmlFor={ids.models}>Models (names, comma-separated; * for all)</label>
                <input
                  id={ids.models}
                  className="input mono"
                  value={models}
                  onChange={(e) => setModels(e.currentTarget.value)}
                />
              </div>
            )}
            <div className="field">
              <label htmlFor={ids.expiry}>Expires</label>
              <select
                id={ids.expiry}
                className="input"
                value={expiry}
                onChange={(e) => setExpiry(Number(e.currentTarget.value))}
              >
                {EXPIRIES.map((x, i) => (
                  <option key={x.label} value={i}>
                    {x.label}
                  </option>
                ))}
              </select>
            </div>
            {error && <ErrorCallout error={error} title="No key was made" />}
            {created && (
              <div className="callout callout-success" role="status">
                <div className="callout-body">
                  <p className="callout-title">Key created: copy it now, it is not shown again</p>
                  <code className="mono small break-all" data-testid="new-key">
                    {created.key}
                  </code>
                </div>
              </div>
            )}
            <div className="form-actions">
              <button type="submit" className="btn btn-primary" disabled={busy}>
                {busy ? 'Creating…' : 'Create key'}
              </button>
            </div>
          </form>
        </Card>
      </div>

      <ConfirmDialog
        open={revoking !== null}
        title={`Revoke ${revoking?.name || revoking?.prefix || 'this key'}?`}
        confirmLabel="Revoke key"
        busy={revokeKey.isPending}
        error={revokeKey.error}
        onConfirm={() => revoking && revokeKey.mutate(revoking)}
        onClose={closeRevoke}
      >
        <p>Every replica refuses it within seconds. Whatever uses it stops working; this cannot be undone.</p>
      </ConfirmDialog>
    </div>
  );
}
