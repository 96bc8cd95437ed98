import { type FormEvent, useEffect, useId, useState } from 'react';
import { Link, useParams } from 'react-router';
import { ApiError, toApiError } from '../api/client.js';
import { useApi } from '../api/session.js';
import type { Channel, ChannelMove, Model, ModelVersion } from '../api/types.js';
import { useResource } from '../api/use-resource.js';
import { FlagIcon } from '../components/icons.js';
import { PageHeader, useDocumentTitle } from '../components/layout.js';
import { Card, EmptyState, ErrorCallout, LoadingBlock, PageError, Skeleton } from '../components/ui.js';
import { formatDate, relativeTime } from '../lib/format.js';
import { channelNameProblem } from '../lib/channels.js';

/**
 * Where each channel of a model points (devices ask for `model@prod`), moving one, and its history. Every
 * move is recorded with the key that made it.
 */
export function ChannelsPage() {
  const { modelId = '' } = useParams();
  const api = useApi();
  const model = useResource((signal) => api.get<Model>(`/v1/models/${modelId}`, { signal }), [api, modelId]);
  const versions = useResource(
    (signal) => api.get<ModelVersion[]>(`/v1/models/${modelId}/versions`, { signal }),
    [api, modelId],
  );
  const channels = useResource(
    (signal) => api.get<Channel[]>(`/v1/models/${modelId}/channels`, { signal }),
    [api, modelId],
  );
  const [selected, setSelected] = useState<string | null>(null);
  const [name, setName] = useState('prod');
  const [version, setVersion] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const [nameError, setNameError] = useState<string | null>(null);
  const [moved, setMoved] = useState<string | null>(null);
  const [historyTick, setHistoryTick] = useState(0);
  const ids = { name: useId(), version: useId(), nameErr: useId(), channels: useId() };
  const m = model.data;
  useDocumentTitle(m ? `Channels of ${m.name}` : 'Channels');

  useEffect(() => {
    if (versions.data && versions.data.length > 0 && version === '') setVersion(String(versions.data[0].number));
  }, [versions.data, version]);
  useEffect(() => {
    if (channels.data && channels.data.length > 0 && selected === null) setSelected(channels.data[0].name);
  }, [channels.data, selected]);

  const history = useResource(
    (signal) =>
      selected
        ? api.get<ChannelMove[]>(`/v1/models/${modelId}/channels/${encodeURIComponent(selected)}/history`, { signal })
        : Promise.resolve([]),
    [api, modelId, selected, historyTick],
  );

  if (model.error) return <PageError error={model.error} onRetry={model.reload} />;

  const move = async (e: FormEvent): Promise<void> => {
    e.preventDefault();
    const problem = channelNameProblem(name);
    setNameError(problem);
    if (problem || !version) return;
    setBusy(true);
    setError(null);
    setMoved(null);
    try {
      const channel = await api.put<Channel>(`/v1/models/${modelId}/channels/${encodeURIComponent(name)}`, {
        version: Number(version),
      });
      const others = (channels.data ?? []).filter((c) => c.name !== channel.name);
      channels.setData([...others, channel].sort((a, b) => (a.name < b.name ? -1 : 1)));
      setSelected(channel.name);
      setHistoryTick((t) => t + 1);
      setMoved(`${channel.name} now points at v${channel.versionNumber}.`);
    } catch (err) {
      setError(toApiError(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <div className="page">
      <PageHeader
        crumbs={[
          { label: 'Models', to: '/' },
          { label: m?.name ?? '…', to: `/models/${modelId}` },
          { label: 'Channels' },
        ]}
        title={m ? `Channels of ${m.name}` : <Skeleton width={260} height={30} />}
        subtitle={
          <>
            Devices that resolve <code>{m?.name ?? 'model'}@prod</code> get the version the <code>prod</code> channel
            points at. Move a channel to roll a version out, or back; a staged rollout (API, docs/fleet.md) moves it by
            degrees, gated by what devices report, and its fleet view shows how each device class fares.
          </>
        }
      />
      <div className="grid-main-side">
        <div className="stack">
          <Card title="Channels" className="table-card">
            {channels.error ? (
              <div className="card-pad">
                <PageError error={channels.error} onRetry={channels.reload} />
              </div>
            ) : !channels.data ? (
              <div className="card-pad">
                <LoadingBlock lines={2} label="Loading channels" />
              </div>
            ) : channels.data.length === 0 ? (
              <EmptyState icon={<FlagIcon size={28} />} title="No channels yet">
                Point a channel (prod, staging, …) at a version with the form.
              </EmptyState>
            ) : (
              <div className="table-scroll">
                <table className="table table-middle" aria-describedby={ids.channels}>
                  <thead>
                    <tr>
                      <th scope="col">Channel</th>
                      <th scope="col">Points at</th>
                      <th scope="col">Since</th>
                      <th scope="col">
                        <span className="sr-only">History</span>
                      </th>
                    </tr>
                  </thead>
                  <tbody>
                    {channels.data.map((c) => (
                      <tr key={c.name} className={selected === c.name ? 'row-selected' : undefined}>
                        <th scope="row">
                          <span className="tag">{c.name}</span>
                        </th>
                        <td>
                          <Link to={`/versions/${c.versionId}`}>v{c.versionNumber}</Link>
                        </td>
                        <td className="muted">{relativeTime(c.updatedAt)}</td>
                        <td className="cell-action">
                          <Link
                            className="btn btn-ghost btn-sm"
                            to={`/models/${modelId}/channels/${encodeURIComponent(c.name)}/fleet`}
                            aria-label={`Fleet of ${c.name}`}
                          >
                            Fleet
                          </Link>{' '}
                          <button
                            type="button"
                            className="btn btn-ghost btn-sm"
                            aria-pressed={selected === c.name}
                            onClick={() => setSelected(c.name)}
                          >
                            History
                          </button>
                        </td>
                      </tr>
                    ))}
                  </tbody>
                </table>
                <p id={ids.channels} className="sr-only">
                  Each channel, the version it points at, and when it last moved.
                </p>
              </div>
            )}
          </Card>

          <Card title={selected ? `History of ${selected}` : 'History'}>
            <div className="card-pad">
              {!selected ? (
                <p className="muted">Pick a channel to see how it moved.</p>
              ) : !history.data ? (
                <LoadingBlock lines={3} label="Loading history" />
              ) : history.data.length === 0 ? (
                <p className="muted">No moves recorded.</p>
              ) : (
                <ol className="timeline" aria-label={`Moves of ${selected}, newest first`}>
                  {history.data.map((h, i) => (
                    <li key={`${h.movedAt}-${i}`}>
                      <span className="timeline-dot" aria-hidden="true" />
                      <div>
                        <strong>
                          {h.fromVersion === null
                            ? `Created at v${h.toVersion}`
                            : `v${h.fromVersion} → v${h.toVersion}`}
                        </strong>
                        <div className="muted small">
                          {relativeTime(h.movedAt)} · {formatDate(h.movedAt)} · by key{' '}
                          <code>{h.movedByKeyId.slice(0, 8)}</code>
                        </div>
                      </div>
                    </li>
                  ))}
                </ol>
              )}
            </div>
          </Card>
        </div>

        <Card title="Move a channel">
          <form className="card-pad stack" onSubmit={(e) => void move(e)} noValidate>
            <div className="field">
              <label htmlFor={ids.name}>Channel</label>
              <input
                id={ids.name}
                className="input mono"
                list={`${ids.name}-list`}
                value={name}
                autoComplete="off"
                spellCheck={false}
                aria-invalid={nameError ? true : undefined}
                aria-describedby={ids.nameErr}
                onChange={(e) => setName(e.currentTarget.value.trim())}
              />
              <datalist id={`${ids.name}-list`}>
                {(channels.data ?? []).map((c) => (
                  <option key={c.name} value={c.name} />
                ))}
              </datalist>
              <p id={ids.nameErr} className="field-error" role="alert">
                {nameError}
              </p>
            </div>
            <div className="field">
              <label htmlFor={ids.version}>Version</label>
              <select
                id={ids.version}
                className="input"
                value={version}
                disabled={!versions.data || versions.data.length === 0}
                onChange={(e) => setVersion(e.currentTarget.value)}
              >
                {(versions.data ?? []).map((v) => (
                  <option key={v.id} value={v.number}>
                    v{v.number} · {v.originalFilename || 'model.pt2'} · {relativeTime(v.createdAt)}
                  </option>
                ))}
              </select>
            </div>
            {error && <ErrorCallout error={error} title="The channel did not move" />}
            <p className="callout-inline-success" role="status">
              {moved}
            </p>
            <div className="form-actions">
              <button type="submit" className="btn btn-primary" disabled={busy || !version}>
                {busy ? 'Moving…' : 'Move channel'}
              </button>
            </div>
          </form>
        </Card>
      </div>
    </div>
  );
}
