import { type FormEvent, useEffect, useId, useRef, useState } from 'react';
import { ApiError } from '../api/client.js';
import { useApi } from '../api/session.js';
import type { Model, ModelVersion } from '../api/types.js';
import { formatBytes, formatRate } from '../lib/format.js';
import { modelNameFromFilename, modelNameProblem } from '../lib/model-name.js';
import { uploadModelVersion, type UploadProgressEvent } from '../upload/uploader.js';
import { CheckIcon } from './icons.js';
import { ErrorCallout, ProgressBar } from './ui.js';

type Stage = 'confirm' | 'uploading' | 'failed' | 'done';

/**
 * The upload of one dropped or picked .pt2: which model it goes to (a new one, or a new version of an
 * existing one), then real progress (bytes on the wire, checksumming, the server's validation), and the
 * server's verdict: the new version, or the PT2_* code saying why the archive was refused.
 */
export function UploadDialog({
  file,
  models,
  fixedModel,
  onClose,
  onUploaded,
}: {
  file: File | null;
  /** Existing models to offer (models page); ignored with fixedModel. */
  models?: Model[];
  /** Upload as a new version of this model (model page). */
  fixedModel?: Model;
  onClose: () => void;
  onUploaded: (version: ModelVersion, model: Model) => void;
}) {
  const api = useApi();
  const dialog = useRef<HTMLDialogElement>(null);
  const [stage, setStage] = useState<Stage>('confirm');
  const [mode, setMode] = useState<'new' | 'existing'>('new');
  const [name, setName] = useState('');
  const [existingId, setExistingId] = useState('');
  const [progress, setProgress] = useState<UploadProgressEvent | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [nameError, setNameError] = useState<string | null>(null);
  const started = useRef<number>(0);
  /** The model this dialog created for the current file: a retry uploads to it instead of creating another. */
  const created = useRef<Model | null>(null);
  const controller = useRef<AbortController | null>(null);
  const titleId = useId();
  const nameId = useId();
  const nameErrId = useId();

  // A new file: start over, suggesting a name (or the existing model of that name).
  useEffect(() => {
    if (!file) return;
    created.current = null;
    const suggested = modelNameFromFilename(file.name);
    const match = models?.find((m) => m.name === suggested);
    setStage('confirm');
    setProgress(null);
    setError(null);
    setNameError(null);
    setName(suggested);
    setMode(match ? 'existing' : 'new');
    setExistingId(match?.id ?? models?.[0]?.id ?? '');
    // eslint-disable-next-line react-hooks/exhaustive-deps -- only a new file starts over, not a reloaded list
  }, [file]);

  useEffect(() => {
    const d = dialog.current;
    if (!d) return;
    if (file && !d.open) d.showModal();
    if (!file && d.open) d.close();
  }, [file]);

  useEffect(() => () => controller.current?.abort(), []);

  const start = async (e?: FormEvent): Promise<void> => {
    e?.preventDefault();
    if (!file) return;
    setError(null);
    let model: Model | undefined =
      fixedModel ?? created.current ?? (mode === 'existing' ? models?.find((m) => m.id === existingId) : undefined);
    if (!model) {
      const problem = modelNameProblem(name);
      if (problem) {
        setNameError(problem);
        return;
      }
    }
    setNameError(null);
    const abort = new AbortController();
    controller.current = abort;
    setStage('uploading');
    setProgress({ phase: 'preparing', route: 'storage', sent: 0, total: file.size, note: 'Starting the upload' });
    started.current = 0;
    try {
      if (!model) {
        try {
          model = await api.post<Model>('/v1/models', { name }, { signal: abort.signal });
          created.current = model;
        } catch (err) {
          if (err instanceof ApiError && err.code === 'CONFLICT') {
            const existing = models?.find((m) => m.name === name);
            setStage('confirm');
            if (existing) {
              setMode('existing');
              setExistingId(existing.id);
            }
            setNameError(
              `A model named “${name}” already exists. Add this file as a new version of it, or pick another name.`,
            );
            return;
          }
          throw err;
        }
      }
      const target = model;
      const { version } = await uploadModelVersion(api, file, target.id, {
        signal: abort.signal,
        onProgress: (p) => {
          if (p.phase === 'uploading' && started.current === 0) started.current = performance.now();
          setProgress(p);
        },
      });
      setStage('done');
      onUploaded(version, target);
    } catch (err) {
      if (abort.signal.aborted) {
        setStage('confirm');
        setProgress(null);
        return;
      }
      setError(
        err instanceof ApiError ? err : new ApiError(0, 'CLIENT', err instanceof Error ? err.message : String(err)),
      );
      setStage('failed');
    } finally {
      controller.current = null;
    }
  };

  const cancelUpload = (): void => controller.current?.abort();

  const close = (): void => {
    if (stage === 'uploading') return;
    onClose();
  };

  const fraction = progress && progress.total > 0 ? progress.sent / progress.total : 0;
  const elapsed = started.current ? performance.now() - started.current : 0;
  const phaseText =
    progress?.phase === 'validating'
      ? 'Kiln is checking the archive (zip layout, program, operators, weights)…'
      : progress?.phase === 'preparing'
        ? (progress.note ?? 'Preparing…')
        : progress
          ? `${formatBytes(progress.sent)} of ${formatBytes(progress.total)}${elapsed > 500 ? ` · ${formatRate(progress.sent, elapsed)}` : ''}`
          : '';

  return (
    <dialog
      ref={dialog}
      className="dialog"
      aria-labelledby={titleId}
      onCancel={(e) => {
        // Esc: never while bytes are in flight (Cancel upload is explicit).
        e.preventDefault();
        close();
      }}
      onClose={() => {
        if (file) onClose();
      }}
    >
      {file && (
        <form method="dialog" onSubmit={(e) => void start(e)} className="dialog-body">
          <h2 id={titleId}>
            {stage === 'failed'
              ? 'Upload refused'
              : fixedModel
                ? `New version of ${fixedModel.name}`
                : 'Upload a model'}
          </h2>
          <div className="file-summary">
            <span className="file-name">{file.name}</span>
            <span className="muted">{formatBytes(file.size)}</span>
          </div>

          {stage === 'confirm' && !fixedModel && (
            <fieldset className="fieldset">
              <legend>Where it goes</legend>
              <label className="radio">
                <input type="radio" name="mode" checked={mode === 'new'} onChange={() => setMode('new')} />A new model
              </label>
              {mode === 'new' && (
                <div className="field indent">
                  <label htmlFor={nameId}>Model name</label>
                  <input
                    id={nameId}
                    className="input"
                    value={name}
                    autoComplete="off"
                    spellCheck={false}
                    aria-invalid={nameError ? true : undefined}
                    aria-describedby={nameError ? nameErrId : undefined}
                    onChange={(e) => setName(e.currentTarget.value)}
                  />
                </div>
              )}
              <label className={models && models.length > 0 ? 'radio' : 'radio disabled'}>
                <input
                  type="radio"
                  name="mode"
                  checked={mode === 'existing'}
                  disabled={!models || models.length === 0}
                  onChange={() => setMode('existing')}
                />
                A new version of an existing model
              </label>
              {mode === 'existing' && models && models.length > 0 && (
                <div className="field indent">
                  <label htmlFor={`${nameId}-existing`}>Model</label>
                  <select
                    id={`${nameId}-existing`}
                    className="input"
                    value={existingId}
                    onChange={(e) => setExistingId(e.currentTarget.value)}
                  >
                    {models.map((m) => (
                      <option key={m.id} value={m.id}>
                        {m.name} {m.latestVersion ? `(next: v${m.latestVersion + 1})` : '(no versions yet)'}
                      </option>
                    ))}
                  </select>
                </div>
              )}
              <p id={nameErrId} className="field-error" role="alert">
                {nameError}
              </p>
            </fieldset>
          )}
          {stage === 'confirm' && fixedModel && (
            <p className="muted">
              This file becomes version {(fixedModel.latestVersion ?? 0) + 1} of <strong>{fixedModel.name}</strong> once
              Kiln has checked it.
            </p>
          )}

          {(stage === 'uploading' || stage === 'done') && progress && (
            <div className="upload-progress" aria-live="polite">
              <ProgressBar
                value={stage === 'done' ? 1 : fraction}
                indeterminate={progress.phase === 'validating' && stage !== 'done'}
                label={`Uploading ${file.name}`}
                valueText={stage === 'done' ? 'Uploaded and validated' : phaseText}
              />
              <div className="upload-progress-line">
                <span>{stage === 'done' ? 'Uploaded and validated' : phaseText}</span>
                <span className="muted">
                  {stage === 'done' ? <CheckIcon size={16} /> : `${Math.floor(fraction * 100)}%`}
                </span>
              </div>
              <p className="muted small">
                {progress.route === 'storage'
                  ? 'Straight to object storage in checksummed parts; the API never sees the bytes.'
                  : 'Through the API (object storage is not reachable from this browser).'}
                {progress.note && progress.phase !== 'preparing' && progress.phase !== 'validating'
                  ? ` ${progress.note}.`
                  : ''}
              </p>
            </div>
          )}

          {stage === 'failed' && error && (
            <>
              <ErrorCallout
                error={error}
                title={error.code.startsWith('PT2_') ? 'Kiln refused this archive' : 'The upload failed'}
              />
              {created.current && (
                <p className="muted small">
                  The model <strong>{created.current.name}</strong> was created and has no versions yet; a file Kiln
                  accepts becomes its version 1.
                </p>
              )}
            </>
          )}

          <div className="dialog-actions">
            {stage === 'confirm' && (
              <>
                <button type="button" className="btn btn-ghost" onClick={close}>
                  Cancel
                </button>
                <button type="submit" className="btn btn-primary">
                  Upload
                </button>
              </>
            )}
            {stage === 'uploading' && (
              <button type="button" className="btn btn-secondary" onClick={cancelUpload}>
                Cancel upload
              </button>
            )}
            {stage === 'failed' && (
              <>
                <button type="button" className="btn btn-ghost" onClick={close}>
                  Close
                </button>
                <button type="button" className="btn btn-primary" onClick={() => void start()}>
                  Try again
                </button>
              </>
            )}
          </div>
        </form>
      )}
    </dialog>
  );
}
