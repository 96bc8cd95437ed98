import { type ReactNode, useEffect, useId, useRef, useState } from 'react';
import type { ApiError } from '../api/client.js';
import { ErrorCallout } from './ui.js';

/**
 * A modal that asks before something that cannot be undone. With `typeToConfirm`, the confirm button stays disabled
 * until that exact text is typed (the model's name, for a delete), so a stray click deletes nothing.
 */
export function ConfirmDialog({
  open,
  title,
  children,
  confirmLabel,
  typeToConfirm,
  busy,
  error,
  onConfirm,
  onClose,
}: {
  open: boolean;
  title: string;
  children?: ReactNode;
  confirmLabel: string;
  typeToConfirm?: string;
  busy: boolean;
  error: ApiError | null;
  onConfirm: () => void;
  onClose: () => void;
}) {
  const dialog = useRef<HTMLDialogElement>(null);
  const titleId = useId();
  const inputId = useId();
  const [typed, setTyped] = useState('');

  useEffect(() => {
    const d = dialog.current;
    if (!d) return;
    if (open && !d.open) {
      setTyped('');
      d.showModal();
    }
    if (!open && d.open) d.close();
  }, [open]);

  const ready = !busy && (typeToConfirm === undefined || typed === typeToConfirm);
  return (
    <dialog
      ref={dialog}
      className="dialog"
      aria-labelledby={titleId}
      onCancel={(e) => {
        e.preventDefault();
        if (!busy) onClose();
      }}
    >
      {open && (
        <form
          method="dialog"
          className="dialog-body"
          onSubmit={(e) => {
            e.preventDefault();
            if (ready) onConfirm();
          }}
        >
          <h2 id={titleId}>{title}</h2>
          {children}
          {typeToConfirm !== undefined && (
            <div className="field">
              <label htmlFor={inputId}>
                Type <code className="code-chip">{typeToConfirm}</code> to confirm
              </label>
              <input
                id={inputId}
                className="input mono"
                value={typed}
                autoComplete="off"
                spellCheck={false}
                onChange={(e) => setTyped(e.currentTarget.value)}
              />
            </div>
          )}
          {error && <ErrorCallout error={error} title="It was not done" />}
          <div className="dialog-actions">
            <button type="button" className="btn btn-ghost" onClick={onClose} disabled={busy}>
              Cancel
            </button>
            <button type="submit" className="btn btn-danger" disabled={!ready}>
              {busy ? 'Working…' : confirmLabel}
            </button>
          </div>
        </form>
      )}
    </dialog>
  );
}
