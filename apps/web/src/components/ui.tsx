// Small building blocks every page uses: status badges, skeletons, empty and error states, copyable
// hashes, progress bars. Each reserves its space so async content never shifts the layout.
import { type ReactNode, useEffect, useRef, useState } from 'react';
import { Link } from 'react-router';
import type { ApiError } from '../api/client.js';
import { explainError } from '../lib/error-codes.js';
import { shortHash } from '../lib/format.js';
import type { StatusInfo, Tone } from '../lib/status.js';
import { AlertIcon, CheckIcon, CopyIcon } from './icons.js';

export function Badge({ tone, children, pulse = false }: { tone: Tone; children: ReactNode; pulse?: boolean }) {
  return (
    <span className={`badge badge-${tone}`}>
      <span className={pulse ? 'badge-dot pulse' : 'badge-dot'} aria-hidden="true" />
      {children}
    </span>
  );
}

export function StatusBadge({ info }: { info: StatusInfo }) {
  return (
    <Badge tone={info.tone} pulse={info.active}>
      {info.label}
    </Badge>
  );
}

/** A grey placeholder of the content's size while it loads. */
export function Skeleton({
  width = '100%',
  height = 16,
  radius = 6,
}: {
  width?: number | string;
  height?: number;
  radius?: number;
}) {
  return <span className="skeleton" style={{ width, height, borderRadius: radius }} aria-hidden="true" />;
}

/** Rows of skeleton lines, announced once to screen readers. */
export function LoadingBlock({
  lines = 3,
  label = 'Loading',
  height = 18,
}: {
  lines?: number;
  label?: string;
  height?: number;
}) {
  return (
    <div className="loading-block" role="status" aria-live="polite">
      <span className="sr-only">{label}…</span>
      {Array.from({ length: lines }, (_, i) => (
        <Skeleton key={i} height={height} width={i === lines - 1 && lines > 1 ? '60%' : '100%'} />
      ))}
    </div>
  );
}

export function EmptyState({
  icon,
  title,
  children,
  action,
}: {
  icon?: ReactNode;
  title: string;
  children?: ReactNode;
  action?: ReactNode;
}) {
  return (
    <div className="empty-state">
      {icon && <div className="empty-icon">{icon}</div>}
      <h3>{title}</h3>
      {children && <div className="muted">{children}</div>}
      {action && <div className="empty-action">{action}</div>}
    </div>
  );
}

/** An API error with its code, its message, and what the code means. */
export function ErrorCallout({
  error,
  title = 'Something went wrong',
  onRetry,
}: {
  error: Pick<ApiError, 'code' | 'message'>;
  title?: string;
  onRetry?: () => void;
}) {
  const explanation = explainError(error.code);
  return (
    <div className="callout callout-danger" role="alert">
      <AlertIcon size={20} className="callout-icon" />
      <div className="callout-body">
        <p className="callout-title">
          {title} <code className="code-chip">{error.code}</code>
        </p>
        <p>{error.message}</p>
        {explanation && explanation !== error.message && <p className="muted small">{explanation}</p>}
        {onRetry && (
          <button type="button" className="btn btn-secondary btn-sm" onClick={onRetry}>
            Try again
          </button>
        )}
      </div>
    </div>
  );
}

/** A page-level error: the resource is missing or the API is down. */
export function PageError({ error, onRetry }: { error: ApiError; onRetry?: () => void }) {
  if (error.status === 404) {
    return (
      <EmptyState
        title="Not found"
        action={
          <Link to="/" className="btn btn-secondary">
            Back to models
          </Link>
        }
      >
        <p>{error.message} It may belong to another tenant, or the link is wrong.</p>
      </EmptyState>
    );
  }
  return <ErrorCallout error={error} title="Could not load this page" onRetry={onRetry} />;
}

/** A hash shortened for reading, with a button that copies the whole of it. */
export function CopyableHash({
  value,
  length = 12,
  label = 'sha256',
}: {
  value: string;
  length?: number;
  label?: string;
}) {
  const [copied, setCopied] = useState(false);
  const timer = useRef<ReturnType<typeof setTimeout>>(undefined);
  useEffect(() => () => clearTimeout(timer.current), []);
  const copy = async (): Promise<void> => {
    try {
      await navigator.clipboard.writeText(value);
    } catch {
      // No clipboard permission (or an insecure context): select-and-copy by hand still works.
      const area = document.createElement('textarea');
      area.value = value;
      document.body.append(area);
      area.select();
      document.execCommand('copy');
      area.remove();
    }
    setCopied(true);
    clearTimeout(timer.current);
    timer.current = setTimeout(() => setCopied(false), 1600);
  };
  return (
    <span className="hash">
      <code title={value} data-full={value}>
        {shortHash(value, length)}
      </code>
      <button
        type="button"
        className="icon-btn"
        onClick={() => void copy()}
        aria-label={copied ? `${label} copied` : `Copy the full ${label}`}
        title={copied ? 'Copied' : `Copy ${label}`}
      >
        {copied ? <CheckIcon size={15} /> : <CopyIcon size={15} />}
      </button>
      <span className="sr-only" aria-live="polite">
        {copied ? 'Copied to the clipboard' : ''}
      </span>
    </span>
  );
}

export function ProgressBar({
  value,
  label,
  valueText,
  indeterminate = false,
}: {
  /** 0..1 */
  value: number;
  label: string;
  valueText?: string;
  indeterminate?: boolean;
}) {
  const pct = Math.round(Math.max(0, Math.min(1, value)) * 1000) / 10;
  return (
    <div
      className={indeterminate ? 'progress indeterminate' : 'progress'}
      role="progressbar"
      aria-label={label}
      aria-valuemin={0}
      aria-valuemax={100}
      aria-valuenow={indeterminate ? undefined : pct}
      aria-valuetext={valueText}
    >
      <div className="progress-fill" style={{ width: indeterminate ? undefined : `${pct}%` }} />
    </div>
  );
}

export function Stat({ label, value, hint }: { label: string; value: ReactNode; hint?: ReactNode }) {
  return (
    <div className="stat">
      <div className="stat-label">{label}</div>
      <div className="stat-value">{value}</div>
      {hint && <div className="stat-hint">{hint}</div>}
    </div>
  );
}

export function Card({
  title,
  actions,
  children,
  className = '',
  id,
  description,
}: {
  title?: ReactNode;
  actions?: ReactNode;
  children: ReactNode;
  className?: string;
  id?: string;
  description?: ReactNode;
}) {
  const headingId = id ? `${id}-title` : undefined;
  return (
    <section className={`card ${className}`} id={id} aria-labelledby={title ? headingId : undefined}>
      {(title || actions) && (
        <header className="card-header">
          <div>
            {title && <h2 id={headingId}>{title}</h2>}
            {description && <p className="muted small card-description">{description}</p>}
          </div>
          {actions && <div className="card-actions">{actions}</div>}
        </header>
      )}
      {children}
    </section>
  );
}
