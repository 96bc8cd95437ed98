import { useQuery } from '@tanstack/react-query';
import { Link, useLocation, useParams } from 'react-router';
import type { TensorSpec } from '@kiln/contracts';
import { compilationListQuery, useVersionWithModel } from '../api/queries.js';
import { useApi } from '../api/session.js';
import { BuildChips } from '../components/build-chips.js';
import { BarList } from '../components/charts.js';
import { CompileForm } from '../components/compile-form.js';
import { CheckIcon } from '../components/icons.js';
import { PageHeader, useDocumentTitle } from '../components/layout.js';
import {
  Card,
  CopyableHash,
  EmptyState,
  LoadingBlock,
  PageError,
  Skeleton,
  Stat,
  StatusBadge,
} from '../components/ui.js';
import { formatBytes, formatCount, formatDate, relativeTime } from '../lib/format.js';
import { formatDim, opBars, weightBytes } from '../lib/graph-summary.js';
import { compilationStatusInfo } from '../lib/status.js';

export function VersionPage() {
  const { versionId = '' } = useParams();
  const api = useApi();
  const location = useLocation();
  const justUploaded = (location.state as { uploaded?: boolean } | null)?.uploaded === true;
  const version = useVersionWithModel(api, versionId);
  const compilations = useQuery(compilationListQuery(api, { versionId }));
  const { version: v, model: m } = version;
  useDocumentTitle(v && m ? `${m.name} v${v.number}` : undefined);

  if (version.error) return <PageError error={version.error} onRetry={version.refetch} />;
  const s = v?.summary;

  return (
    <div className="page">
      <PageHeader
        crumbs={[
          { label: 'Models', to: '/' },
          { label: m?.name ?? '…', to: m ? `/models/${m.id}` : undefined },
          { label: v ? `v${v.number}` : '…' },
        ]}
        title={v && m ? `${m.name} v${v.number}` : <Skeleton width={240} height={30} />}
        subtitle={
          v ? (
            <>
              <span className="mono">{v.originalFilename || 'model.pt2'}</span> · {formatBytes(v.sizeBytes)} · uploaded{' '}
              {relativeTime(v.createdAt)}
            </>
          ) : (
            <Skeleton width={300} />
          )
        }
        actions={
          <>
            <Link to={`/versions/${versionId}/artifacts`} className="btn btn-secondary">
              Artifacts
            </Link>
            {m && v && (
              <Link to={`/playground?model=${m.id}&version=${v.number}`} className="btn btn-secondary">
                Try the resolver
              </Link>
            )}
          </>
        }
      />

      {justUploaded && (
        <div className="callout callout-success" role="status">
          <CheckIcon size={18} />
          <div>
            <strong>Uploaded and validated.</strong> Kiln read the graph below without running any of it. Pick targets
            to compile it.
          </div>
        </div>
      )}

      <section aria-label="Graph summary" className="stats-grid">
        <Stat
          label="Parameters"
          value={s ? formatCount(s.parameters.elements) : <Skeleton width={80} height={26} />}
          hint={
            s ? (
              `${formatBytes(s.parameters.bytes)} in ${s.parameters.tensors} tensors`
            ) : (
              <Skeleton width={120} height={12} />
            )
          }
        />
        <Stat
          label="Weights in all"
          value={s ? formatBytes(weightBytes(s)) : <Skeleton width={80} height={26} />}
          hint={
            s ? (
              `buffers ${formatBytes(s.buffers.bytes)} · constants ${formatBytes(s.constants.bytes)}`
            ) : (
              <Skeleton width={120} height={12} />
            )
          }
        />
        <Stat
          label="Graph nodes"
          value={s ? formatCount(s.nodeCount) : <Skeleton width={60} height={26} />}
          hint={s ? `${Object.keys(s.opHistogram).length} distinct operators` : <Skeleton width={100} height={12} />}
        />
        <Stat
          label="Exported with"
          value={s ? `torch ${s.torchVersion}` : <Skeleton width={120} height={26} />}
          hint={
            s ? (
              `schema ${s.schemaVersion.major}.${s.schemaVersion.minor} · ${s.archive.entries} archive entries`
            ) : (
              <Skeleton width={100} height={12} />
            )
          }
        />
      </section>

      <div className="grid-2">
        <Card title="Operators" description="How often each operator appears in the graph.">
          <div className="card-pad">
            {s ? (
              <BarList
                label="Operator histogram"
                unit="nodes"
                data={opBars(s.opHistogram).map((b) => ({
                  key: b.op ?? 'other',
                  label: b.label,
                  value: b.count,
                  title: b.op ?? undefined,
                  muted: b.op === null,
                }))}
              />
            ) : (
              <LoadingBlock lines={6} label="Loading the graph summary" />
            )}
          </div>
        </Card>
        <Card title="Inputs and outputs" description="Dynamic dimensions show the range export recorded.">
          <div className="card-pad">
            {s ? (
              <>
                <TensorTable caption="Inputs" specs={s.userInputs} />
                <TensorTable caption="Outputs" specs={s.userOutputs} />
                <GuardTable guards={s.guards ?? []} />
              </>
            ) : (
              <LoadingBlock lines={4} label="Loading inputs" />
            )}
          </div>
        </Card>
      </div>

      <Card
        id="compile"
        title="Compile"
        description="One AOTInductor build per target, in parallel on the workers that serve it. Identical content is never compiled twice."
      >
        <div className="card-pad">
          <CompileForm versionId={versionId} />
        </div>
      </Card>

      <Card title="Compilations" className="table-card">
        {compilations.error ? (
          <div className="card-pad">
            <PageError error={compilations.error} onRetry={() => void compilations.refetch()} />
          </div>
        ) : !compilations.data ? (
          <div className="card-pad">
            <LoadingBlock lines={2} label="Loading compilations" />
          </div>
        ) : compilations.data.length === 0 ? (
          <EmptyState title="Not compiled yet">Pick targets above and start the first compilation.</EmptyState>
        ) : (
          <div className="table-scroll">
            <table className="table">
              <thead>
                <tr>
                  <th scope="col">Started</th>
                  <th scope="col">Status</th>
                  <th scope="col">Targets</th>
                </tr>
              </thead>
              <tbody>
                {compilations.data.map((c) => (
                  <tr key={c.id}>
                    <td>
                      <Link to={`/compilations/${c.id}`} className="row-title">
                        {relativeTime(c.createdAt)}
                      </Link>
                      <div className="muted small">{formatDate(c.createdAt)}</div>
                    </td>
                    <td>
                      <StatusBadge info={compilationStatusInfo(c.status)} />
                    </td>
                    <td>
                      <BuildChips builds={c.builds} />
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </Card>

      <Card title="Identity">
        <dl className="kv-grid card-pad">
          <dt>Content hash</dt>
          <dd>
            {v ? <CopyableHash value={v.contentHash} length={16} label="content hash" /> : <Skeleton width={200} />}
          </dd>
          <dt>File sha256</dt>
          <dd>
            {v ? <CopyableHash value={v.fileSha256} length={16} label="file sha256" /> : <Skeleton width={200} />}
          </dd>
          <dt>Model name in the archive</dt>
          <dd className="mono">{s ? s.modelName || s.archiveRoot : <Skeleton width={120} />}</dd>
        </dl>
        <p className="muted small card-pad card-foot">
          The content hash covers the program and the weights, not the zip: re-uploading the same model reuses every
          artifact already built.
        </p>
      </Card>
    </div>
  );
}

/** How input sizes must relate (a derived dim's guard); versions summarised before guards were kept have none. */
function GuardTable({ guards }: { guards: string[] }) {
  if (guards.length === 0) return null;
  return (
    <table className="table table-compact tensor-table">
      <caption>Size relations</caption>
      <thead>
        <tr>
          <th scope="col">Checked by torch before each run of the portable graph</th>
        </tr>
      </thead>
      <tbody>
        {guards.map((g) => (
          <tr key={g}>
            <td className="mono">{g}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function TensorTable({ caption, specs }: { caption: string; specs: TensorSpec[] }) {
  return (
    <table className="table table-compact tensor-table">
      <caption>{caption}</caption>
      <thead>
        <tr>
          <th scope="col">Name</th>
          <th scope="col">dtype</th>
          <th scope="col">Shape</th>
        </tr>
      </thead>
      <tbody>
        {specs.length === 0 ? (
          <tr>
            <td colSpan={3} className="muted">
              None
            </td>
          </tr>
        ) : (
          specs.map((t) => (
            <tr key={t.name}>
              <td className="mono">{t.name}</td>
              <td>
                <span className="tag tag-mono">{t.dtype}</span>
              </td>
              <td className="shape">
                [
                {t.shape.map((d, i) => (
                  <span key={i}>
                    {i > 0 && ', '}
                    {d.kind === 'static' ? (
                      <span>{d.size}</span>
                    ) : (
                      <span
                        className="dim-dynamic"
                        title={`dynamic dimension${d.hint !== null ? `, ${d.hint} at export` : ''}`}
                      >
                        {formatDim(d)}
                      </span>
                    )}
                  </span>
                ))}
                ]
              </td>
            </tr>
          ))
        )}
      </tbody>
    </table>
  );
}
