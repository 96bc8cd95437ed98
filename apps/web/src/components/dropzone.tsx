import { type DragEvent, type ReactNode, useId, useRef, useState } from 'react';
import { isPt2Filename } from '../lib/model-name.js';
import { UploadIcon } from './icons.js';

/**
 * Where a .pt2 is dropped, or picked with the button (keyboard and screen reader users, and anyone who
 * prefers a file dialog). Only the first file counts; anything that is not a .pt2 is refused here with
 * a clear line, before any byte is sent.
 */
export function Dropzone({
  onFile,
  title,
  hint,
  size = 'large',
  disabled = false,
}: {
  onFile: (file: File) => void;
  title: ReactNode;
  hint?: ReactNode;
  /** large: the empty state; compact: one row; stacked: for a narrow side column. */
  size?: 'large' | 'compact' | 'stacked';
  disabled?: boolean;
}) {
  const input = useRef<HTMLInputElement>(null);
  const [over, setOver] = useState(false);
  const [problem, setProblem] = useState<string | null>(null);
  const depth = useRef(0);
  const hintId = useId();

  const take = (files: FileList | null | undefined): void => {
    const file = files?.[0];
    if (!file) return;
    if (!isPt2Filename(file.name)) {
      setProblem(`“${file.name}” is not a .pt2 file. Export the model with torch.export.save(ep, "model.pt2").`);
      return;
    }
    setProblem(null);
    onFile(file);
  };

  const hasFiles = (e: DragEvent): boolean => Array.from(e.dataTransfer?.types ?? []).includes('Files');

  return (
    <div
      className={`dropzone dropzone-${size}${over ? ' dropzone-over' : ''}${disabled ? ' dropzone-disabled' : ''}`}
      data-dropzone=""
      onDragEnter={(e) => {
        if (disabled || !hasFiles(e)) return;
        e.preventDefault();
        depth.current++;
        setOver(true);
      }}
      onDragOver={(e) => {
        if (disabled || !hasFiles(e)) return;
        e.preventDefault();
        e.dataTransfer.dropEffect = 'copy';
      }}
      onDragLeave={() => {
        depth.current = Math.max(0, depth.current - 1);
        if (depth.current === 0) setOver(false);
      }}
      onDrop={(e) => {
        e.preventDefault();
        depth.current = 0;
        setOver(false);
        if (!disabled) take(e.dataTransfer?.files);
      }}
    >
      <div className="dropzone-icon" aria-hidden="true">
        <UploadIcon size={size === 'large' ? 28 : 20} />
      </div>
      <div className="dropzone-text">
        <p className="dropzone-title">{title}</p>
        {hint && (
          <p className="dropzone-hint muted" id={hintId}>
            {hint}
          </p>
        )}
      </div>
      <div>
        <button
          type="button"
          className="btn btn-secondary"
          disabled={disabled}
          aria-describedby={hint ? hintId : undefined}
          onClick={() => input.current?.click()}
        >
          Choose a .pt2 file
        </button>
        <input
          ref={input}
          hidden
          type="file"
          accept=".pt2"
          aria-label="Model file (.pt2)"
          disabled={disabled}
          onChange={(e) => {
            take(e.currentTarget.files);
            e.currentTarget.value = ''; // the same file can be picked again after an error
          }}
        />
      </div>
      <p className="dropzone-problem" role="alert">
        {problem}
      </p>
    </div>
  );
}
