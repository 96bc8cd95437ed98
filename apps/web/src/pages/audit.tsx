import { keepPreviousData, useInfiniteQuery } from '@tanstack/react-query';
import { type FormEvent, useId, useState } from 'react';
import { auditEventsQuery } from '../api/queries.js';
import { useApi } from '../api/session.js';
import type { AuditEvent } from '../api/types.js';
import { PageHeader, useDocumentTitle } from '../components/layout.js';
import { Badge, Card, EmptyState, ErrorCallout, LoadingBlock, PageError } from '../components/ui.js';
import { formatDate } from '../lib/format.js';

function who(e: AuditEvent): string {
  if (e.actor === 'admin') return 'operator';
  const by = e.keyId ? `${e.role ?? 'key'} ${e.keyId.slice(0, 8)}` : 'schedule';
  return e.actor === 'retention' ? `retention (${by})` : by;
}

/** The tenant's audit log (owners): every mutation, newest first, filtered and paged. */
export function AuditPage() {
  useDocumentTitle('Audit log');
  const api = useApi();
  const ids = { action: useId(), target: useId() };
  const [draft, setDraft] = useState({ action: '', targetId: '' });
  const [filter, setFilter] = useState(draft);
  // Another filter's first page replaces the shown events when it comes, not a skeleton before.
  const log = useInfiniteQuery({ ...auditEventsQuery(api, filter), placeholderData: keepPreviousData });
  const events = log.data?.pages.flatMap((p) => p.events) ?? [];
  const firstError = log.isFetchNextPageError ? null : log.error;
  const moreError = log.isFetchNextPageError ? log.error : null;

  const apply = (e: FormEvent): void => {
    e.preventDefault();
    const next = { action: draft.action, targetId: draft.targetId.trim() };
    // The same filter again asks again (new events may have come), as a new one does.
    if (next.action === filter.action && next.targetId === filter.targetId) void log.refetch();
    else setFilter(next);
  };

  return (
    <div className="page">
      <PageHeader title="Audit log" subtitle="Every change to this tenant: who, what, on which ids, when, from where" />
      <Card>
        <form className="card-pad field-row" onSubmit={apply}>
          <div className="field">
            <label htmlFor={ids.action}>Action</label>
            <select
              id={ids.action}
              className="input"
              value={draft.action}
              onChange={(e) => setDraft({ ...draft, action: e.currentTarget.value })}
            >
              <option value="">All</option>
              <option value="DELETE">Deletes</option>
              <option value="POST">Creates (POST)</option>
              <option value="PUT">Replaces (PUT)</option>
              <option value="PATCH">Updates (PATCH)</option>
            </select>
          </div>
          <div className="field">
            <label htmlFor={ids.target}>Id (model, version, key, …)</label>
            <input
              id={ids.target}
              className="input mono"
              value={draft.targetId}
              spellCheck={false}
              onChange={(e) => setDraft({ ...draft, targetId: e.currentTarget.value })}
            />
          </div>
          <div className="form-actions">
            <button type="submit" className="btn btn-secondary">
              Filter
            </button>
          </div>
        </form>
      </Card>
      <Card title="Events" className="table-card">
        {firstError ? (
          <PageError error={firstError} onRetry={() => void log.refetch()} />
        ) : !log.data ? (
          <div className="card-pad">
            <LoadingBlock lines={4} label="Loading the audit log" />
          </div>
        ) : events.length === 0 ? (
          <EmptyState title="No events">Nothing matches this filter.</EmptyState>
        ) : (
          <div className="table-scroll">
            <table className="table" aria-label="Audit events">
              <thead>
                <tr>
                  <th scope="col">When</th>
                  <th scope="col">Who</th>
                  <th scope="col">Action</th>
                  <th scope="col">Ids</th>
                  <th scope="col">Status</th>
                  <th scope="col">From</th>
                </tr>
              </thead>
              <tbody>
                {events.map((e) => (
                  <tr key={e.id}>
                    <td className="muted small">{formatDate(e.at)}</td>
                    <td className="small">{who(e)}</td>
                    <td className="mono small">{e.action}</td>
                    <td className="mono small">
                      {Object.entries({ ...e.targetIds, ...e.resultIds }).map(([k, v]) => (
                        <div key={k} title={v}>
                          {k}: {v.slice(0, 8)}
                        </div>
                      ))}
                    </td>
                    <td>
                      <Badge tone={e.status < 400 ? 'success' : 'danger'}>
                        {e.status}
                        {e.errorCode ? ` ${e.errorCode}` : ''}
                      </Badge>
                    </td>
                    <td className="muted small">{e.ip || '—'}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
        {moreError && <ErrorCallout error={moreError} title="Could not load older events" />}
        {log.hasNextPage && (
          <div className="card-pad">
            <button
              type="button"
              className="btn btn-secondary"
              disabled={log.isFetchingNextPage}
              onClick={() => void log.fetchNextPage()}
            >
              {log.isFetchingNextPage ? 'Loading…' : 'Load older events'}
            </button>
          </div>
        )}
      </Card>
    </div>
  );
}
