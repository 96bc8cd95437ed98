import { type FormEvent, useId, useState } from 'react';
import { ApiError, toApiError } from '../api/client.js';
import { useApi } from '../api/session.js';
import type { CreatedWebhook, Webhook, WebhookDelivery, WebhookEventType } from '../api/types.js';
import { useResource } from '../api/use-resource.js';
import { ConfirmDialog } from '../components/confirm-dialog.js';
import { PageHeader, useDocumentTitle } from '../components/layout.js';
import { Badge, Card, EmptyState, ErrorCallout, LoadingBlock, PageError } from '../components/ui.js';
import { relativeTime } from '../lib/format.js';

const EVENTS: { type: WebhookEventType; label: string }[] = [
  { type: 'compilation.finished', label: 'A compilation finished' },
  { type: 'build.failed', label: 'A build failed' },
  { type: 'channel.moved', label: 'A channel moved' },
  { type: 'rollout.halted', label: 'A rollout halted' },
  { type: 'artifact.quarantined', label: 'An artifact was quarantined' },
];

const TONES = { delivered: 'success', failed: 'danger', pending: 'neutral' } as const;

/** The tenant's webhooks (owners): register an endpoint, see each delivery's last answer, send one again. */
export function WebhooksPage() {
  useDocumentTitle('Webhooks');
  const api = useApi();
  const ids = { url: useId() };
  const hooks = useResource((signal) => api.get<Webhook[]>('/v1/webhooks', { signal }), [api]);
  const [url, setUrl] = useState('');
  const [events, setEvents] = useState<WebhookEventType[]>(['compilation.finished', 'build.failed']);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const [created, setCreated] = useState<CreatedWebhook | null>(null);
  const [selected, setSelected] = useState<string | null>(null);
  const [removing, setRemoving] = useState<{ hook: Webhook; busy: boolean; error: ApiError | null } | null>(null);
  const shown = selected ?? hooks.data?.[0]?.id ?? null;

  const create = async (e: FormEvent): Promise<void> => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    setCreated(null);
    try {
      const hook = await api.post<CreatedWebhook>('/v1/webhooks', { url: url.trim(), events });
      setCreated(hook);
      setSelected(hook.id);
      setUrl('');
      hooks.reload();
    } catch (err) {
      setError(toApiError(err));
    } finally {
      setBusy(false);
    }
  };

  const remove = async (): Promise<void> => {
    if (!removing) return;
    setRemoving({ ...removing, busy: true, error: null });
    try {
      await api.delete(`/v1/webhooks/${removing.hook.id}`);
      if (selected === removing.hook.id) setSelected(null);
      setRemoving(null);
      hooks.reload();
    } catch (err) {
      setRemoving({ ...removing, busy: false, error: toApiError(err) });
    }
  };

  return (
    <div className="page">
      <PageHeader
        title="Webhooks"
        subtitle="Get told when builds end, channels move or rollouts halt, instead of polling"
      />
      <div className="grid-main-side">
        <div className="stack">
          <Card title="Endpoints" className="table-card">
            {hooks.error ? (
              <PageError error={hooks.error} onRetry={hooks.reload} />
            ) : !hooks.data ? (
              <div className="card-pad">
                <LoadingBlock lines={2} label="Loading webhooks" />
              </div>
            ) : hooks.data.length === 0 ? (
              <EmptyState title="No webhooks yet">Register an endpoint on the right.</EmptyState>
            ) : (
              <div className="table-scroll">
                <table className="table" aria-label="Webhook endpoints">
                  <thead>
                    <tr>
                      <th scope="col">URL</th>
                      <th scope="col">Events</th>
                      <th scope="col">Created</th>
                      <th scope="col">
                        <span className="sr-only">Actions</span>
                      </th>
                    </tr>
                  </thead>
                  <tbody>
                    {hooks.data.map((h) => (
                      <tr key={h.id} aria-selected={h.id === shown}>
                        <td className="mono small truncate">
                          <button type="button" className="link-button" onClick={() => setSelected(h.id)}>
                            {h.url}
                          </button>
                        </td>
                        <td className="small">
                          {h.events.map((ev) => (
                            <span key={ev} className="tag">
                              {ev}
                            </span>
                          ))}
                        </td>
                        <td className="muted">{relativeTime(h.createdAt)}</td>
                        <td>
                          <button
                            type="button"
                            className="btn btn-ghost btn-sm"
                            aria-label={`Remove ${h.url}`}
                            onClick={() => setRemoving({ hook: h, busy: false, error: null })}
                          >
                            Remove
                          </button>
                        </td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            )}
          </Card>
          {shown && <Deliveries webhookId={shown} />}
        </div>

        <Card title="New endpoint">
          <form className="card-pad stack" onSubmit={(e) => void create(e)} noValidate>
            <div className="field">
              <label htmlFor={ids.url}>URL</label>
              <input
                id={ids.url}
                className="input mono"
                value={url}
                placeholder="https://ci.example.com/kiln"
                spellCheck={false}
                onChange={(e) => setUrl(e.currentTarget.value)}
              />
            </div>
            <fieldset className="fieldset">
              <legend>Events</legend>
              {EVENTS.map((ev) => (
                <label key={ev.type} className="checkbox">
                  <input
                    type="checkbox"
                    checked={events.includes(ev.type)}
                    onChange={(e) =>
                      setEvents(e.currentTarget.checked ? [...events, ev.type] : events.filter((x) => x !== ev.type))
                    }
                  />{' '}
                  {ev.label} <code className="small">{ev.type}</code>
                </label>
              ))}
            </fieldset>
            {error && <ErrorCallout error={error} title="The endpoint was not registered" />}
            {created && (
              <div className="callout callout-success" role="status">
                <div className="callout-body">
                  <p className="callout-title">Signing secret: copy it now, it is not shown again</p>
                  <code className="mono small break-all" data-testid="webhook-secret">
                    {created.secret}
                  </code>
                  <p className="muted small">Check Kiln-Signature on every request (docs/webhooks.md).</p>
                </div>
              </div>
            )}
            <div className="form-actions">
              <button type="submit" className="btn btn-primary" disabled={busy}>
                {busy ? 'Registering…' : 'Register endpoint'}
              </button>
            </div>
          </form>
        </Card>
      </div>

      <ConfirmDialog
        open={removing !== null}
        title={`Remove ${removing?.hook.url ?? 'this endpoint'}?`}
        confirmLabel="Remove endpoint"
        busy={removing?.busy ?? false}
        error={removing?.error ?? null}
        onConfirm={() => void remove()}
        onClose={() => setRemoving(null)}
      >
        <p>Nothing more is sent to it, and its delivery history goes with it.</p>
      </ConfirmDialog>
    </div>
  );
}

function Deliveries({ webhookId }: { webhookId: string }) {
  const api = useApi();
  const deliveries = useResource(
    (signal) => api.get<WebhookDelivery[]>(`/v1/webhooks/${webhookId}/deliveries`, { signal }),
    [api, webhookId],
  );
  const [error, setError] = useState<ApiError | null>(null);

  const redeliver = async (id: string): Promise<void> => {
    setError(null);
    try {
      await api.post(`/v1/webhooks/${webhookId}/deliveries/${id}/redeliver`);
      deliveries.reload();
    } catch (err) {
      setError(toApiError(err));
    }
  };

  return (
    <Card
      title="Deliveries"
      className="table-card"
      actions={
        <button type="button" className="btn btn-secondary btn-sm" onClick={deliveries.reload}>
          Refresh
        </button>
      }
    >
      {error && <ErrorCallout error={error} title="Not sent again" />}
      {deliveries.error ? (
        <PageError error={deliveries.error} onRetry={deliveries.reload} />
      ) : !deliveries.data ? (
        <div className="card-pad">
          <LoadingBlock lines={2} label="Loading deliveries" />
        </div>
      ) : deliveries.data.length === 0 ? (
        <EmptyState title="Nothing sent yet">Deliveries appear here when a subscribed event happens.</EmptyState>
      ) : (
        <div className="table-scroll">
          <table className="table" aria-label="Webhook deliveries">
            <thead>
              <tr>
                <th scope="col">Event</th>
                <th scope="col">Status</th>
                <th scope="col" className="num">
                  Attempts
                </th>
                <th scope="col">Last answer</th>
                <th scope="col">When</th>
                <th scope="col">
                  <span className="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {deliveries.data.map((d) => (
                <tr key={d.id}>
                  <td className="mono small">{d.eventType}</td>
                  <td>
                    <Badge tone={TONES[d.status]}>{d.status}</Badge>
                  </td>
                  <td className="num">{d.attempts}</td>
                  <td className="small">
                    {d.lastStatusCode !== null ? `HTTP ${d.lastStatusCode}` : ''}
                    {d.lastError ? ` ${d.lastError}` : ''}
                    {d.lastResponseBody ? <div className="muted mono truncate">{d.lastResponseBody}</div> : null}
                  </td>
                  <td className="muted">{relativeTime(d.createdAt)}</td>
                  <td>
                    <button
                      type="button"
                      className="btn btn-ghost btn-sm"
                      aria-label={`Redeliver ${d.eventType} ${d.id.slice(0, 8)}`}
                      onClick={() => void redeliver(d.id)}
                    >
                      Redeliver
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </Card>
  );
}
