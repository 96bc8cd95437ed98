import { useQuery } from '@tanstack/react-query';
import { Fragment, useEffect, useRef, useState } from 'react';
import { Link, useLocation, useParams } from 'react-router';
import { artifactDownloadQuery, artifactsQuery, useVersionWithModel } from '../api/queries.js';
import { useApi } from '../api/session.js';
import type { Artifact } from '../api/types.js';
import { TimingChart } from '../components/charts.js';
import { BoxIcon, CheckIcon, CrossIcon, DownloadIcon } from '../components/icons.js';
import { PageHeader, useDocumentTitle } from '../components/layout.js';
import { Card, CopyableHash, EmptyState, ErrorCallout, LoadingBlock, PageError, Skeleton } from '../components/ui.js';
import { formatBytes, formatDate, formatError, formatMs, formatSpeedup, relativeTime } from '../lib/format.js';

export function ArtifactsPage() {
  const { versionId = '' } = useParams();
  const api = useApi();
  const location = useLocation();
  const context = useVersionWithModel(api, versionId);
  const artifacts = useQuery(artifactsQuery(api, versionId));
  const [open, setOpen] = useState<string | null>(location.hash ? location.hash.slice(1) : null);
  const { version: v, model: m } = context;
  useDocumentTitle(m && v ? `Artifacts of ${m.name} v${v.number}` : 'Artifacts');

  if (context.error) return <PageError error={context.error} onRetry={context.refetch} />;
  const list = artifacts.data;
  // Cross builds verified under emulation carry no timing (manifest timing.method "unmeasured").
  const timed = list?.filter((a) => a.timing.method !== 'unmeasured');

  return (
    <div className="page">
      <PageHeader
        crumbs={[
          { label: 'Models', to: '/' },
          { label: m?.name ?? '…', to: m ? `/models/${m.id}` : undefined },
          { label: v ? `v${v.number}` : '…', to: `/versions/${versionId}` },
          { label: 'Artifacts' },
        ]}
        title={m && v ? `Artifacts of ${m.name} v${v.number}` : <Skeleton width={300} height={30} />}
        subtitle="Each artifact was checked against the portable graph, timed against it, and its instructions inspected on the build host."
        actions={
          m &&
          v && (
            <Link to={`/playground?model=${m.id}&version=${v.number}`} className="btn btn-secondary">
              Which one would a device get?
            </Link>
          )
        }
      />

      {artifacts.error ? (
        <PageError error={artifacts.error} onRetry={() => void artifacts.refetch()} />
      ) : (
        <>
          <Card
            title="Speed"
            description="Median time of one call on the build host, eager (the portable graph) against the compiled artifact."
          >
            <div className="card-pad chart-box">
              {!timed ? (
                <LoadingBlock lines={3} height={28} label="Loading timings" />
              ) : timed.length === 0 ? (
                <p className="muted">Nothing timed yet.</p>
              ) : (
                <TimingChart
                  data={timed.map((a) => ({
                    key: a.id,
                    label: a.targetId,
                    eagerMs: a.timing.eagerMs,
                    compiledMs: a.timing.compiledMs,
                    speedup: a.timing.speedup,
                  }))}
                />
              )}
            </div>
          </Card>

          <Card title="Artifacts" className="table-card">
            {!list ? (
              <div className="card-pad">
                <LoadingBlock lines={3} height={28} label="Loading artifacts" />
              </div>
            ) : list.length === 0 ? (
              <EmptyState
                icon={<BoxIcon size={32} />}
                title="No artifacts yet"
                action={
                  <Link to={`/versions/${versionId}#compile`} className="btn btn-primary">
                    Compile this version
                  </Link>
                }
              >
                Artifacts appear here as soon as a build for a target succeeds.
              </EmptyState>
            ) : (
              <div className="table-scroll">
                <table className="table artifacts-table">
                  <thead>
                    <tr>
                      <th scope="col">Target</th>
                      <th scope="col" className="num">
                        Size
                      </th>
                      <th scope="col">sha256 (code)</th>
                      <th scope="col" className="num">
                        Max abs error
                      </th>
                      <th scope="col" className="num">
                        Eager
                      </th>
                      <th scope="col" className="num">
                        Compiled
                      </th>
                      <th scope="col" className="num">
                        Speedup
                      </th>
                      <th scope="col">Checks</th>
                      <th scope="col">
                        <span className="sr-only">Download</span>
                      </th>
                    </tr>
                  </thead>
                  <tbody>
                    {list.map((a) => {
                      const code = a.parts.find((p) => p.role === 'code') ?? a.parts[0];
                      const expanded = open === a.id;
                      return (
                        <Fragment key={a.id}>
                          <tr id={a.id} className={expanded ? 'row-expanded' : undefined}>
                            <th scope="row" className="mono">
                              {a.targetId}
                              <div className="muted small sans">built {relativeTime(a.createdAt)}</div>
                            </th>
                            <td className="num">{formatBytes(a.sizeBytes)}</td>
                            <td>{code ? <CopyableHash value={code.sha256} /> : '—'}</td>
                            <td
                              className="num"
                              title={`tolerance: atol ${a.verification.atol}, rtol ${a.verification.rtol}; max rel error ${formatError(a.verification.maxRelError)}`}
                            >
                              {formatError(a.verification.maxAbsError)}
                            </td>
                            <td className="num">{formatMs(a.timing.eagerMs)}</td>
                            <td className="num">{formatMs(a.timing.compiledMs)}</td>
                            <td className="num">
                              <strong>{formatSpeedup(a.timing.speedup)}</strong>
                            </td>
                            <td className="checks-cell">
                              <Check ok={a.verification.passed} label="numerics" />
                              {a.verification.emulated && (
                                <span
                                  className="muted small"
                                  title={`Cross-built, verified under ${a.verification.emulated.emulator} (${a.verification.emulated.cpu}) with torch ${a.verification.emulated.torch}: correct on ${a.verification.emulated.arch}, speed not measured`}
                                >
                                  emulated ({a.verification.emulated.arch})
                                </span>
                              )}
                              <Check ok={a.isaCheck.passed} label="ISA" />
                              {a.reproduction?.checked && (
                                <span title="Built twice on the build host: every part had the same sha256">
                                  <Check ok={a.reproduction.identical} label="reproduced" />
                                </span>
                              )}
                              {a.reuse?.reused && (
                                <span
                                  className="muted small"
                                  title={`Weights-only update: the code part is the one built for cache key ${a.reuse.donorCacheKey}; only the weights are new (verified and timed like any build)`}
                                >
                                  code reused
                                </span>
                              )}
                            </td>
                            <td className="cell-action">
                              <button
                                type="button"
                                className="btn btn-secondary btn-sm"
                                aria-expanded={expanded}
                                aria-controls={`${a.id}-download`}
                                onClick={() => setOpen(expanded ? null : a.id)}
                              >
                                <DownloadIcon size={15} /> Download
                              </button>
                            </td>
                          </tr>
                          {expanded && (
                            <tr className="row-detail">
                              <td colSpan={9} id={`${a.id}-download`}>
                                <DownloadPanel artifact={a} />
                              </td>
                            </tr>
                          )}
                        </Fragment>
                      );
                    })}
                  </tbody>
                </table>
              </div>
            )}
          </Card>
        </>
      )}
    </div>
  );
}

function Check({ ok, label }: { ok: boolean; label: string }) {
  return (
    <span className={ok ? 'check ok' : 'check bad'}>
      {ok ? <CheckIcon size={14} /> : <CrossIcon size={14} />}
      {label}
      <span className="sr-only">{ok ? ' passed' : ' failed'}</span>
    </span>
  );
}

/** Short-lived presigned URLs for each part (GET /v1/artifacts/:id/download), and how to assemble them. */
function DownloadPanel({ artifact }: { artifact: Artifact }) {
  const api = useApi();
  const download = useQuery(artifactDownloadQuery(api, artifact.id));
  const heading = useRef<HTMLHeadingElement>(null);
  useEffect(() => heading.current?.focus(), []);
  const d = download.data;
  return (
    <div className="download-panel">
      <h3 ref={heading} tabIndex={-1}>
        Download {artifact.targetId}
      </h3>
      {download.error ? (
        <ErrorCallout error={download.error} />
      ) : !d ? (
        <LoadingBlock lines={2} label="Signing download links" />
      ) : (
        <>
          <ul className="download-list">
            {d.parts.map((p) => (
              <li key={p.sha256}>
                <a href={p.url} className="btn btn-secondary btn-sm" download>
                  <DownloadIcon size={15} /> {p.role === 'code' ? 'Code package (.zip)' : 'Weights blob'}
                </a>
                <span className="muted small">
                  {formatBytes(p.size)} · <CopyableHash value={p.sha256} label={`${p.role} sha256`} />
                  {p.entry && (
                    <>
                      {' '}
                      · goes at <code>{p.entry}</code>
                    </>
                  )}
                </span>
              </li>
            ))}
            <li>
              <a href={d.manifestUrl} className="btn btn-ghost btn-sm" target="_blank" rel="noreferrer">
                Manifest (JSON)
              </a>
              <span className="muted small">what the artifact needs, how it was verified and timed; signed</span>
            </li>
          </ul>
          <p className="small">{d.assembly}</p>
          <p className="muted small">Links expire {formatDate(d.expiresAt)}.</p>
        </>
      )}
    </div>
  );
}
