import { keepPreviousData, useQuery } from '@tanstack/react-query';
import { type FormEvent, useEffect, useId, useMemo, useRef, useState } from 'react';
import { Link, useSearchParams } from 'react-router';
import { ApiError, toApiError } from '../api/client.js';
import { channelsQuery, modelListQuery, modelVersionsQuery } from '../api/queries.js';
import { useApi } from '../api/session.js';
import type { Resolution } from '../api/types.js';
import { BoxIcon, CheckIcon, CrossIcon, TargetIcon } from '../components/icons.js';
import { PageHeader, useDocumentTitle } from '../components/layout.js';
import { Card, CopyableHash, EmptyState, ErrorCallout, LoadingBlock } from '../components/ui.js';
import {
  describeDevice,
  FINGERPRINT_PRESETS,
  fingerprintToJson,
  parseFingerprint,
} from '../lib/fingerprint-presets.js';
import { formatBytes, formatSpeedup } from '../lib/format.js';

const DEFAULT_PRESET = FINGERPRINT_PRESETS[0];

/**
 * The resolver playground: a device fingerprint (a preset or pasted JSON) against a model version's
 * artifacts, answered by POST /v1/resolve exactly as a device would be: the chosen artifact and why,
 * every rejected one with every rule it fails, and the portable fallback.
 */
export function PlaygroundPage() {
  useDocumentTitle('Resolver playground');
  const api = useApi();
  const [params, setParams] = useSearchParams();
  const modelId = params.get('model') ?? '';
  const selector = params.get('channel')
    ? `channel:${params.get('channel')}`
    : params.get('version')
      ? `version:${params.get('version')}`
      : 'latest';

  const models = useQuery(modelListQuery(api));
  // Another model's versions and channels replace the shown ones when they come.
  const versions = useQuery({ ...modelVersionsQuery(api, modelId), placeholderData: keepPreviousData });
  const channels = useQuery({ ...channelsQuery(api, modelId), placeholderData: keepPreviousData });

  const [presetId, setPresetId] = useState<string | null>(DEFAULT_PRESET.id);
  const [text, setText] = useState(() => fingerprintToJson(DEFAULT_PRESET.fingerprint));
  const parsed = useMemo(() => parseFingerprint(text), [text]);
  const [result, setResult] = useState<Resolution | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [busy, setBusy] = useState(false);
  const resultHeading = useRef<HTMLHeadingElement>(null);
  const ids = { model: useId(), version: useId(), fp: useId(), fpErr: useId() };

  // Pick the first model with versions when none is chosen yet.
  const usable = useMemo(() => models.data?.filter((m) => m.latestVersion !== null) ?? [], [models.data]);
  useEffect(() => {
    if (!modelId && usable.length > 0) setParams({ model: usable[0].id }, { replace: true });
  }, [modelId, usable, setParams]);

  const choosePreset = (id: string): void => {
    const preset = FINGERPRINT_PRESETS.find((p) => p.id === id);
    if (!preset) return;
    setPresetId(id);
    setText(fingerprintToJson(preset.fingerprint));
    setResult(null);
    setError(null);
  };

  const setSelector = (value: string): void => {
    const next: Record<string, string> = { model: modelId };
    if (value.startsWith('version:')) next.version = value.slice('version:'.length);
    if (value.startsWith('channel:')) next.channel = value.slice('channel:'.length);
    setParams(next, { replace: true });
    setResult(null);
  };

  const resolve = async (e: FormEvent): Promise<void> => {
    e.preventDefault();
    if (!parsed.ok || !modelId) return;
    setBusy(true);
    setError(null);
    try {
      const body: Record<string, unknown> = { model: modelId, fingerprint: parsed.value };
      if (selector.startsWith('version:')) body.version = Number(selector.slice('version:'.length));
      if (selector.startsWith('channel:')) body.channel = selector.slice('channel:'.length);
      setResult(await api.post<Resolution>('/v1/resolve', body));
      requestAnimationFrame(() => resultHeading.current?.focus());
    } catch (err) {
      setResult(null);
      setError(toApiError(err));
    } finally {
      setBusy(false);
    }
  };

  if (models.data && usable.length === 0) {
    return (
      <div className="page">
        <PageHeader title="Resolver playground" />
        <EmptyState
          icon={<TargetIcon size={32} />}
          title="Nothing to resolve yet"
          action={
            <Link to="/" className="btn btn-primary">
              Upload a model
            </Link>
          }
        >
          Upload and compile a model, then ask here which artifact each kind of device would get.
        </EmptyState>
      </div>
    );
  }

  return (
    <div className="page">
      <PageHeader
        title="Resolver playground"
        subtitle="Ask what a device would get: the fastest artifact it can safely run, why, and why not the others."
      />
      <div className="playground">
        <form className="card playground-form" onSubmit={(e) => void resolve(e)} aria-label="Device and model">
          <div className="card-pad stack">
            <div className="field-row">
              <div className="field">
                <label htmlFor={ids.model}>Model</label>
                <select
                  id={ids.model}
                  className="input"
                  value={modelId}
                  disabled={!models.data}
                  onChange={(e) => {
                    setParams({ model: e.currentTarget.value }, { replace: true });
                    setResult(null);
                  }}
                >
                  {!models.data && <option>Loading…</option>}
                  {usable.map((m) => (
                    <option key={m.id} value={m.id}>
                      {m.name}
                    </option>
                  ))}
                </select>
              </div>
              <div className="field">
                <label htmlFor={ids.version}>Version</label>
                <select
                  id={ids.version}
                  className="input"
                  value={selector}
                  onChange={(e) => setSelector(e.currentTarget.value)}
                >
                  <option value="latest">Latest</option>
                  {(channels.data ?? []).map((c) => (
                    <option key={c.name} value={`channel:${c.name}`}>
                      Channel {c.name} (v{c.versionNumber})
                    </option>
                  ))}
                  {(versions.data ?? []).map((v) => (
                    <option key={v.id} value={`version:${v.number}`}>
                      v{v.number}
                    </option>
                  ))}
                </select>
              </div>
            </div>

            <fieldset className="fieldset">
              <legend>Device presets</legend>
              <div className="preset-row">
                {FINGERPRINT_PRESETS.map((p) => (
                  <button
                    key={p.id}
                    type="button"
                    className={presetId === p.id ? 'preset active' : 'preset'}
                    aria-pressed={presetId === p.id}
                    onClick={() => choosePreset(p.id)}
                    title={p.description}
                  >
                    <span className="preset-label">{p.label}</span>
                    <span className="preset-desc">{p.description}</span>
                  </button>
                ))}
              </div>
            </fieldset>

            <div className="field">
              <label htmlFor={ids.fp}>Fingerprint (JSON, schema version 1)</label>
              <textarea
                id={ids.fp}
                className="input mono fingerprint-input"
                rows={16}
                spellCheck={false}
                value={text}
                aria-invalid={!parsed.ok}
                aria-describedby={ids.fpErr}
                onChange={(e) => {
                  setText(e.currentTarget.value);
                  setPresetId(null);
                }}
              />
              <div id={ids.fpErr} className="fp-status" aria-live="polite">
                {parsed.ok ? (
                  <span className="ok-line">
                    <CheckIcon size={15} /> {describeDevice(parsed.value)}
                  </span>
                ) : (
                  <ul className="field-error-list">
                    {parsed.errors.slice(0, 6).map((err) => (
                      <li key={err}>{err}</li>
                    ))}
                    {parsed.errors.length > 6 && <li>… and {parsed.errors.length - 6} more</li>}
                  </ul>
                )}
              </div>
              <p className="muted small">
                The Kiln device runtime sends this on the device (docs/fingerprint.md); paste one from a real host to
                see what it would get.
              </p>
            </div>

            <div className="form-actions">
              <button type="submit" className="btn btn-primary" disabled={busy || !parsed.ok || !modelId}>
                {busy ? 'Resolving…' : 'Resolve'}
              </button>
            </div>
          </div>
        </form>

        <section className="playground-result" aria-labelledby="answer-heading">
          <h2 id="answer-heading" ref={resultHeading} tabIndex={-1} className="section-title">
            Answer
          </h2>
          {error && <ErrorCallout error={error} title="The resolver refused" />}
          {busy && !result && <LoadingBlock lines={6} label="Resolving" />}
          {!busy && !result && !error && (
            <div className="card answer-placeholder">
              <EmptyState icon={<TargetIcon size={30} />} title="Pick a device and resolve">
                The answer names the artifact, the rules it passed, and each rejected artifact with every rule it fails.
              </EmptyState>
            </div>
          )}
          {result && <ResolutionView result={result} />}
        </section>
      </div>
    </div>
  );
}

function ResolutionView({ result }: { result: Resolution }) {
  const a = result.artifact;
  const [why, ...passed] = a?.reasons ?? [];
  return (
    <div className="stack" data-resolution="">
      <p className="muted small">
        {result.model.name} v{result.version.number}
        {result.version.selectedBy === 'channel'
          ? ` (channel ${result.version.channel})`
          : result.version.selectedBy === 'latest'
            ? ' (latest)'
            : ''}
      </p>
      {a ? (
        <article className="card answer-chosen" data-chosen-target={a.targetId} aria-label="Chosen artifact">
          <div className="card-pad">
            <div className="answer-eyebrow">This device gets</div>
            <div className="answer-target">
              <BoxIcon size={22} /> <span className="mono">{a.targetId}</span>
              <span className="answer-speedup">{formatSpeedup(a.speedup)} vs eager</span>
            </div>
            <p className="answer-why">{why}</p>
            <ul className="reason-list">
              {passed.map((r) => (
                <li key={r} className="reason ok">
                  <CheckIcon size={14} /> {r}
                </li>
              ))}
            </ul>
            <p className="muted small">
              {formatBytes(a.size)} · manifest <CopyableHash value={a.sha256} label="manifest sha256" /> · signed with
              key <code>{a.signingKeyId}</code>
            </p>
          </div>
        </article>
      ) : (
        <article className="card answer-none" data-chosen-target="" aria-label="No compiled artifact">
          <div className="card-pad">
            <div className="answer-eyebrow">No compiled artifact fits</div>
            <p>This device runs the portable graph (below).</p>
          </div>
        </article>
      )}

      {result.ranked.length > 1 && (
        <Card
          title="Every compatible artifact, best first"
          description="Ranked by measured speed (within 15% counts as equal), then by the more specific target."
        >
          <ol className="ranked-list card-pad">
            {result.ranked.map((r, i) => (
              <li key={r.artifactId} className={i === 0 ? 'chosen' : undefined}>
                <span className="mono">{r.targetId}</span> <span className="muted">{formatSpeedup(r.speedup)}</span>
                {i === 0 && <span className="tag">chosen</span>}
              </li>
            ))}
          </ol>
        </Card>
      )}

      <Card title={`Rejected (${result.rejected.length})`}>
        <div className="card-pad">
          {result.rejected.length === 0 ? (
            <p className="muted">Every artifact of this version fits this device.</p>
          ) : (
            <ul className="rejected-list">
              {result.rejected.map((r) => (
                <li key={r.artifactId} data-target={r.targetId}>
                  <span className="mono rejected-target">{r.targetId}</span>
                  <ul className="reason-list">
                    {r.reasons.map((reason) => (
                      <li key={reason} className="reason bad">
                        <CrossIcon size={14} /> {reason}
                      </li>
                    ))}
                  </ul>
                </li>
              ))}
            </ul>
          )}
        </div>
      </Card>

      <Card title="Fallback: the portable graph" className="answer-fallback">
        <div className="card-pad">
          <p>{result.fallback.reason}</p>
          <p className="muted small">
            The original .pt2 · {formatBytes(result.fallback.size)} · <CopyableHash value={result.fallback.sha256} /> ·{' '}
            <a href={result.fallback.url}>download</a>
          </p>
        </div>
      </Card>
    </div>
  );
}
