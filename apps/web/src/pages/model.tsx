import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { Link, useNavigate, useParams } from 'react-router';
import { channelsQuery, modelListQuery, modelQuery, modelVersionsQuery, queryKeys } from '../api/queries.js';
import { useApi } from '../api/session.js';
import type { DeletionResult } from '../api/types.js';
import { ConfirmDialog } from '../components/confirm-dialog.js';
import { Dropzone } from '../components/dropzone.js';
import { FlagIcon } from '../components/icons.js';
import { PageHeader, useDocumentTitle } from '../components/layout.js';
import { Card, CopyableHash, EmptyState, LoadingBlock, PageError, Skeleton } from '../components/ui.js';
import { UploadDialog } from '../components/upload-dialog.js';
import { formatBytes, formatCount, relativeTime } from '../lib/format.js';

export function ModelPage() {
  const { modelId = '' } = useParams();
  const api = useApi();
  const queryClient = useQueryClient();
  const navigate = useNavigate();
  const model = useQuery(modelQuery(api, modelId));
  const versions = useQuery(modelVersionsQuery(api, modelId));
  const channels = useQuery(channelsQuery(api, modelId));
  const [file, setFile] = useState<File | null>(null);
  const [deleting, setDeleting] = useState<{ force: boolean } | null>(null);
  useDocumentTitle(model.data?.name);

  const deleteModel = useMutation({
    mutationFn: (force: boolean) => api.delete<DeletionResult>(`/v1/models/${modelId}${force ? '?force=true' : ''}`),
    onSuccess: () => {
      // Off the list at once; its own queries are left to go (refetching them now would only find a 404).
      queryClient.setQueryData(modelListQuery(api).queryKey, (list) => list?.filter((m) => m.id !== modelId));
      void queryClient.invalidateQueries({ queryKey: queryKeys.modelList() });
      void queryClient.invalidateQueries({ queryKey: queryKeys.compilationLists() });
      void navigate('/', { replace: true });
    },
  });
  const closeDelete = (): void => {
    setDeleting(null);
    deleteModel.reset();
  };

  if (model.error) return <PageError error={model.error} onRetry={() => void model.refetch()} />;
  const m = model.data;
  const channelsByVersion = new Map<number, string[]>();
  for (const c of channels.data ?? [])
    channelsByVersion.set(c.versionNumber, [...(channelsByVersion.get(c.versionNumber) ?? []), c.name]);

  return (
    <div className="page">
      <PageHeader
        crumbs={[{ label: 'Models', to: '/' }, { label: m?.name ?? '…' }]}
        title={m ? m.name : <Skeleton width={220} height={30} />}
        subtitle={m ? m.description || `Created ${relativeTime(m.createdAt)}` : <Skeleton width={280} />}
        actions={
          <>
            <Link to={`/models/${modelId}/channels`} className="btn btn-secondary">
              <FlagIcon size={16} /> Channels
            </Link>
            <Link to={`/playground?model=${modelId}`} className="btn btn-secondary">
              Try the resolver
            </Link>
            <button
              type="button"
              className="btn btn-danger"
              disabled={!m}
              onClick={() => setDeleting({ force: false })}
            >
              Delete model
            </button>
          </>
        }
      />

      <div className="grid-main-side">
        <Card title="Versions" className="table-card">
          {versions.error ? (
            <PageError error={versions.error} onRetry={() => void versions.refetch()} />
          ) : !versions.data ? (
            <div className="card-pad">
              <LoadingBlock lines={3} label="Loading versions" />
            </div>
          ) : versions.data.length === 0 ? (
            <EmptyState title="No versions yet">Drop a .pt2 on the right to upload version 1.</EmptyState>
          ) : (
            <div className="table-scroll">
              <table className="table">
                <thead>
                  <tr>
                    <th scope="col">Version</th>
                    <th scope="col">File</th>
                    <th scope="col" className="num">
                      Parameters
                    </th>
                    <th scope="col" className="num">
                      Size
                    </th>
                    <th scope="col">Content hash</th>
                    <th scope="col">Uploaded</th>
                  </tr>
                </thead>
                <tbody>
                  {versions.data.map((v) => (
                    <tr key={v.id}>
                      <td>
                        <Link to={`/versions/${v.id}`} className="row-title">
                          v{v.number}
                        </Link>
                        {channelsByVersion.get(v.number)?.map((c) => (
                          <span key={c} className="tag" title={`Channel ${c} points here`}>
                            {c}
                          </span>
                        ))}
                      </td>
                      <td className="truncate mono small">{v.originalFilename || '—'}</td>
                      <td className="num">{formatCount(v.summary.parameters.elements)}</td>
                      <td className="num">{formatBytes(v.sizeBytes)}</td>
                      <td>
                        <CopyableHash value={v.contentHash} label="content hash" />
                      </td>
                      <td className="muted">{relativeTime(v.createdAt)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
        </Card>

        <div className="stack">
          <Card title="New version">
            <div className="card-pad">
              <Dropzone
                size="stacked"
                disabled={!m}
                onFile={setFile}
                title={m ? `Drop a .pt2 to add v${(m.latestVersion ?? 0) + 1}` : 'Drop a .pt2'}
              />
            </div>
          </Card>
          <Card
            title="Channels"
            actions={
              <Link to={`/models/${modelId}/channels`} className="btn btn-ghost btn-sm">
                Manage
              </Link>
            }
          >
            <div className="card-pad">
              {!channels.data ? (
                <LoadingBlock lines={2} label="Loading channels" />
              ) : channels.data.length === 0 ? (
                <p className="muted">No channels yet. Point one (like prod) at a version so devices can follow it.</p>
              ) : (
                <ul className="kv-list">
                  {channels.data.map((c) => (
                    <li key={c.name}>
                      <span className="tag">{c.name}</span>
                      <span>
                        → <Link to={`/versions/${c.versionId}`}>v{c.versionNumber}</Link>
                      </span>
                    </li>
                  ))}
                </ul>
              )}
            </div>
          </Card>
        </div>
      </div>

      {m && (
        <UploadDialog
          file={file}
          fixedModel={m}
          onClose={() => setFile(null)}
          onUploaded={(version) => {
            setFile(null);
            void queryClient.invalidateQueries({ queryKey: queryKeys.models });
            void navigate(`/versions/${version.id}`);
          }}
        />
      )}
      <ConfirmDialog
        open={deleting !== null}
        title={`Delete ${m?.name ?? 'this model'}?`}
        confirmLabel="Delete model"
        typeToConfirm={m?.name ?? ''}
        busy={deleteModel.isPending}
        error={deleteModel.error}
        onConfirm={() => deleting && deleteModel.mutate(deleting.force)}
        onClose={closeDelete}
      >
        <p>
          Every version, compilation and artifact of this model goes, with its files in storage (blobs other models
          share stay). Devices that resolved it fall back to nothing. The audit log keeps a record of the delete.
        </p>
        <label className="checkbox">
          <input
            type="checkbox"
            checked={deleting?.force ?? false}
            onChange={(e) => deleting && setDeleting({ force: e.currentTarget.checked })}
          />{' '}
          Also delete the channels and rollouts that point at it
        </label>
      </ConfirmDialog>
    </div>
  );
}
