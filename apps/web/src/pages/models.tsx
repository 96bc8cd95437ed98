import { useMemo, useState } from 'react';
import { Link, useNavigate } from 'react-router';
import type { ApiClient } from '../api/client.js';
import { useApi } from '../api/session.js';
import type { Compilation, Model, ModelVersion } from '../api/types.js';
import { useResource } from '../api/use-resource.js';
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

/** Models, each with its latest version and that version's latest compilation (newest models first). */
async function loadModelRows(api: ApiClient, signal: AbortSignal): Promise<ModelRow[]> {
  const [models, compilations] = await Promise.all([
    api.get<Model[]>('/v1/models', { signal }),
    api.get<Compilation[]>('/v1/compilations', { signal }),
  ]);
  const versions = await Promise.all(
    models.map((m) =>
      m.latestVersion === null
        ? Promise.resolve([])
        : api.get<ModelVersion[]>(`/v1/models/${m.id}/versions`, { signal }),
    ),
  );
  return models.map((model, i) => {
    const latest = versions[i].reduce<ModelVersion | null>((a, v) => (!a || v.number > a.number ? v : a), null);
    const compilation = latest ? (compilations.find((c) => c.modelVersionId === latest.id) ?? null) : null;
    return { model, latest, compilation };
  });
}

export function ModelsPage() {
  useDocumentTitle('Models');
  const api = useApi();
  const navigate = useNavigate();
  const rows = useResource((signal) => loadModelRows(api, signal), [api]);
  const [file, setFile] = useState<File | null>(null);

  const models = useMemo(() => rows.data?.map((r) => r.model), [rows.data]);
  const empty = rows.data !== undefined && rows.data.length === 0;

  return (
    <div className="page">
      <PageHeader
        title="Models"
        subtitle="Upload a torch.export .pt2 once; Kiln compiles it for every target of your fleet and tells each device which artifact to run."
      />
      {rows.error && <PageError error={rows.error} onRetry={rows.reload} />}

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
                <tbody aria-busy={rows.loading && !rows.data}>
                  {!rows.data && !rows.error
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
                    : rows.data?.map(({ model, latest, compilation }) => (
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
          void navigate(`/versions/${version.id}`, { state: { uploaded: true } });
        }}
      />
    </div>
  );
}
