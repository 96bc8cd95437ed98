import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { type FormEvent, useId, useState } from 'react';
import { queryKeys, webhookDeliveriesQuery, webhooksQuery } from '../api/queries.js';
import { useApi } from '../api/session.js';
import type { CreatedWebhook, Webhook, WebhookEventType } from '../api/types.js';
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
  const queryClient = useQueryClient();
  const hooks = useQuery(webhooksQuery(api));
  const [url, setUrl] = useState('');
  const [events, setEvents] = useState<WebhookEventType[]>(['compilation.finished', 'build.failed']);
  const [selected, setSelected] = useState<string | null>(null);
  const [removing, setRemoving] = useState<Webhook | null>(null);
  const shown = selected ?? hooks.data?.[0]?.id ?? null;

  const createHook = useMutation({
    mutationFn: (body: { url: string; events: WebhookEventType[] }) => api.post<CreatedWebhook>('/v1/webhooks', body),
    onSuccess: (hook) => {
      setSelected(hook.id);
      setUrl('');
      void queryClient.invalidateQueries({ queryKey: queryKeys.webhooks });
    },
  });
  const busy = createHook.isPending;
  const error = createHook.error;
  const created = createHook.data ?? null;

  const create = (e: FormEvent): void => {
    e.preventDefault();
    createHook.mutate({ url: url.trim(), events });
  };

  const removeHook = useMutation({
    mutationFn: (hook: Webhook) => api.delete(`/v1/webhooks/${hook.id}`),
    onSuccess: (_, hook) => {
      if (selected === hook.id) setSelected(null);
      closeRemove();
      void queryClient.invalidateQueries({ queryKey: queryKeys.webhooks });
    },
  });
  const closeRemove = (): void => {
    setRemoving(null);
    removeHook.reset();
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
              <PageError error={hooks.error} onRetry={() => void hooks.refetch()} />
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
                            onClick={() => setRemoving(h)}
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
          <form className="card-pad stack" onSubmit={create} noValidate>
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
        title={`Remove ${removing?.url ?? 'this endpoint'}?`}
        confirmLabel="Remove endpoint"
        busy={removeHook.isPending}
        error={removeHook.error}
        onConfirm={() => removing && removeHook.mutate(removing)}
        onClose={closeRemove}
      >
        <p>Nothing more is sent to it, and its delivery history goes with it.</p>
      </ConfirmDialog>
    </div>
  );
}

function Deliveries({ webhookId }: { webhookId: string }) {
  const api = useApi();
  const queryClient = useQueryClient();
  const deliveries = useQuery(webhookDeliveriesQuery(api, webhookId));
  const redeliver = useMutation({
    mutationFn: (deliveryId: string) => api.post(`/v1/webhooks/${webhookId}/deliveries/${deliveryId}/redeliver`),
    onSuccess: () => void queryClient.invalidateQueries({ queryKey: queryKeys.webhookDeliveries(webhookId) }),
  });
  const error = redeliver.error;
  const refresh = (): void => void deliveries.refetch();

  return (
    <Card
      title="Deliveries"
      className="table-card"
      actions={
        <button type="button" className="btn btn-secondary btn-sm" onClick={refresh}>
          Refresh
        </button>
      }
    >
      {error && <ErrorCallout error={error} title="Not sent again" />}
      {deliveries.error ? (
        <PageError error={deliveries.error} onRetry={refresh} />
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
                      onClick={() => redeliver.mutate(d.id)}
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
