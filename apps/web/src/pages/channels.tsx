import { keepPreviousData, useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { type FormEvent, useEffect, useId, useState } from 'react';
import { Link, useParams } from 'react-router';
import { channelHistoryQuery, channelsQuery, modelQuery, modelVersionsQuery, queryKeys } from '../api/queries.js';
import { useApi } from '../api/session.js';
import type { Channel } from '../api/types.js';
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
  const queryClient = useQueryClient();
  const model = useQuery(modelQuery(api, modelId));
  const versions = useQuery(modelVersionsQuery(api, modelId));
  const channels = useQuery(channelsQuery(api, modelId));
  const [selected, setSelected] = useState<string | null>(null);
  const [name, setName] = useState('prod');
  const [version, setVersion] = useState('');
  const [nameError, setNameError] = useState<string | null>(null);
  const [moved, setMoved] = useState<string | null>(null);
  const ids = { name: useId(), version: useId(), nameErr: useId(), channels: useId() };
  const m = model.data;
  useDocumentTitle(m ? `Channels of ${m.name}` : 'Channels');

  useEffect(() => {
    if (versions.data && versions.data.length > 0 && version === '') setVersion(String(versions.data[0].number));
  }, [versions.data, version]);
  useEffect(() => {
    if (channels.data && channels.data.length > 0 && selected === null) setSelected(channels.data[0].name);
  }, [channels.data, selected]);

  // Another channel's history replaces the shown one when it comes, not a skeleton before.
  const history = useQuery({ ...channelHistoryQuery(api, modelId, selected), placeholderData: keepPreviousData });

  const moveChannel = useMutation({
    mutationFn: (to: { name: string; version: number }) =>
      api.put<Channel>(`/v1/models/${modelId}/channels/${encodeURIComponent(to.name)}`, { version: to.version }),
    onSuccess: (channel) => {
      queryClient.setQueryData(channelsQuery(api, modelId).queryKey, (list) =>
        [...(list ?? []).filter((c) => c.name !== channel.name), channel].sort((a, b) => (a.name < b.name ? -1 : 1)),
      );
      // Its history has a new move; its fleet view serves another version.
      void queryClient.invalidateQueries({ queryKey: queryKeys.channelHistory(modelId, channel.name) });
      void queryClient.invalidateQueries({ queryKey: queryKeys.fleet(modelId, channel.name) });
      setSelected(channel.name);
      setMoved(`${channel.name} now points at v${channel.versionNumber}.`);
    },
  });
  const busy = moveChannel.isPending;
  const error = moveChannel.error;

  if (model.error) return <PageError error={model.error} onRetry={() => void model.refetch()} />;

  const move = (e: FormEvent): void => {
    e.preventDefault();
    const problem = channelNameProblem(name);
    setNameError(problem);
    if (problem || !version) return;
    setMoved(null);
    moveChannel.mutate({ name, version: Number(version) });
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
                <PageError error={channels.error} onRetry={() => void channels.refetch()} />
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
          <form className="card-pad stack" onSubmit={move} noValidate>
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
