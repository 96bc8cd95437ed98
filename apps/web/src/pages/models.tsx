import { useQueries, useQuery, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { Link, useNavigate } from 'react-router';
import type { ApiClient, ApiError } from '../api/client.js';
import { compilationListQuery, modelListQuery, modelVersionsQuery, queryKeys } from '../api/queries.js';
import { useApi } from '../api/session.js';
import type { Compilation, Model, ModelVersion } from '../api/types.js';
import { BuildChips } from '../components/build-chips.js';
import { Dropzone } from '../components/dropzone.js';
import { ChevronIcon } from '../components/icons.js';
import { PageHeader, useDocumentTitle } from '../components/layout.js';
import { PageError, Skeleton, StatusBadge } from '../components/ui.js';
import { UploadDialog } from '../components/upload-dialog.js';
import { formatBytes, formatCount, relativeTime } from '../lib/format.js';
import { compilationStatusInfo } from '../lib/status.js';

interface ModelRow {
  model: Model;
  latest: ModelVersion | null;
  compilation: Compilation | null;
}

/**
 * Models, each with its latest version and that version's latest compilation (newest models first), from the
 * same cached lists the model and version pages read. Rows come when every list has come.
 */
function useModelRows(api: ApiClient): {
  models: Model[] | undefined;
  rows: ModelRow[] | undefined;
  error: ApiError | null;
  refetch: () => void;
} {
  const models = useQuery(modelListQuery(api));
  const compilations = useQuery(compilationListQuery(api));
  const versioned = (models.data ?? []).filter((m) => m.latestVersion !== null);
  const versions = useQueries({ queries: versioned.map((m) => modelVersionsQuery(api, m.id)) });
  const failed = [models, compilations, ...versions].filter((q) => q.error);
  const versionsOf = new Map(versioned.map((m, i) => [m.id, versions[i].data]));
  const complete = compilations.data !== undefined && versions.every((q) => q.data !== undefined);
  const rows =
    models.data && complete
      ? models.data.map((model) => {
          const latest = (versionsOf.get(model.id) ?? []).reduce<ModelVersion | null>(
            (a, v) => (!a || v.number > a.number ? v : a),
            null,
          );
          const compilation = latest ? (compilations.data?.find((c) => c.modelVersionId === latest.id) ?? null) : null;
          return { model, latest, compilation };
        })
      : undefined;
  return {
    models: models.data,
    rows,
    error: failed[0]?.error ?? null,
    refetch: () => failed.forEach((q) => void q.refetch()),
  };
}

export function ModelsPage() {
  useDocumentTitle('Models');
  const api = useApi();
  const queryClient = useQueryClient();
  const navigate = useNavigate();
  const { models, rows, error, refetch } = useModelRows(api);
  const [file, setFile] = useState<File | null>(null);
  const empty = rows !== undefined && rows.length === 0;

  return (
    <div className="page">
      <PageHeader
        title="Models"
        subtitle="Upload a torch.export .pt2 once; Kiln compiles it for every target of your fleet and tells each device which artifact to run."
      />
      {error && <PageError error={error} onRetry={refetch} />}

      {empty ? (
        <div className="empty-upload">
          <Dropzone
            onFile={setFile}
            title="No models yet — drag a .pt2 here"
            hint={
              <>
                Export your model with{' '}
                <code>torch.export.save(torch.export.export(model, args), &quot;model.pt2&quot;)</code>, then drop the
                file here or choose it. Kiln checks it before anything reaches torch.
              </>
            }
          />
        </div>
      ) : (
        <>
          <Dropzone
            size="compact"
            onFile={setFile}
            title="Drop a .pt2 here to upload a model or a new version"
            hint="Checked in TypeScript before anything reaches torch: no pickles, allowed operators only."
          />
          <section aria-labelledby="models-heading" className="card table-card">
            <h2 id="models-heading" className="sr-only">
              All models
            </h2>
            <div className="table-scroll">
              <table className="table models-table">
                <thead>
                  <tr>
                    <th scope="col">Model</th>
                    <th scope="col">Latest version</th>
                    <th scope="col">Latest compilation</th>
                    <th scope="col">
                      <span className="sr-only">Open</span>
                    </th>
                  </tr>
                </thead>
                <tbody aria-busy={!rows && !error}>
                  {!rows && !error
                    ? [0, 1, 2].map((i) => (
                        <tr key={i} className="skeleton-row">
                          <td>
                            <Skeleton width="45%" />
                            <Skeleton width="70%" height={12} />
                          </td>
                          <td>
                            <Skeleton width="60%" />
                          </td>
                          <td>
                            <Skeleton width="80%" />
                          </td>
                          <td />
                        </tr>
                      ))
                    : rows?.map(({ model, latest, compilation }) => (
                        <tr key={model.id} className="clickable-row">
                          <td>
                            <Link to={`/models/${model.id}`} className="row-title">
                              {model.name}
                            </Link>
                            <div className="muted small truncate">
                              {model.description || `Created ${relativeTime(model.createdAt)}`}
                            </div>
                          </td>
                          <td>
                            {latest ? (
                              <>
                                <Link to={`/versions/${latest.id}`}>v{latest.number}</Link>
                                <span className="muted small">
                                  {' '}
                                  · {formatCount(latest.summary.parameters.elements)} params ·{' '}
                                  {formatBytes(latest.sizeBytes)} · {relativeTime(latest.createdAt)}
                                </span>
                              </>
                            ) : (
                              <span className="muted">No versions yet</span>
                            )}
                          </td>
                          <td>
                            {compilation ? (
                              <div className="stack-sm">
                                <Link to={`/compilations/${compilation.id}`} className="plain-link">
                                  <StatusBadge info={compilationStatusInfo(compilation.status)} />
                                </Link>
                                <BuildChips builds={compilation.builds} />
                              </div>
                            ) : (
                              <span className="muted">{latest ? 'Not compiled yet' : '—'}</span>
                            )}
                          </td>
                          <td className="cell-action">
                            <Link to={`/models/${model.id}`} className="icon-link" aria-label={`Open ${model.name}`}>
                              <ChevronIcon />
                            </Link>
                          </td>
                        </tr>
                      ))}
                </tbody>
              </table>
            </div>
          </section>
        </>
      )}

      <UploadDialog
        file={file}
        models={models}
        onClose={() => setFile(null)}
        onUploaded={(version) => {
          setFile(null);
          // A new model, or a new latest version of one.
          void queryClient.invalidateQueries({ queryKey: queryKeys.models });
          void navigate(`/versions/${version.id}`, { state: { uploaded: true } });
        }}
      />
    </div>
  );
}
