import { type FormEvent, useId, useState } from 'react';
import { Navigate, useLocation, useNavigate } from 'react-router';
import { ApiClient, ApiError } from '../api/client.js';
import { useSession } from '../api/session.js';
import { LogoMark } from '../components/icons.js';
import { useDocumentTitle } from '../components/layout.js';

export function SignInPage() {
  useDocumentTitle('Sign in');
  const { api, signIn, endedBecause } = useSession();
  const navigate = useNavigate();
  const location = useLocation();
  const from = (location.state as { from?: string } | null)?.from ?? '/';
  const [key, setKey] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const inputId = useId();
  const errorId = useId();

  if (api) return <Navigate to={from} replace />;

  const submit = async (e: FormEvent): Promise<void> => {
    e.preventDefault();
    const trimmed = key.trim();
    if (!trimmed) {
      setError('Paste your API key.');
      return;
    }
    setBusy(true);
    setError(null);
    try {
      // Any authenticated read proves the key; the models list is the first page anyway.
      await new ApiClient(trimmed).get('/v1/models');
      signIn(trimmed);
      void navigate(from, { replace: true });
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) setError('This key was not accepted (UNAUTHENTICATED).');
      else if (err instanceof ApiError && err.status === 403)
        setError('This is a device token: it can only resolve and download. Sign in with an API key (kiln_…).');
      else setError(err instanceof Error ? err.message : String(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <main className="signin" id="main">
      <div className="signin-card">
        <div className="signin-brand">
          <LogoMark size={40} />
          <span className="brand-name">Kiln</span>
        </div>
        <h1>Sign in</h1>
        <p className="muted">
          Compile PyTorch models for every device of your fleet. Paste the API key of your tenant to continue.
        </p>
        {endedBecause && (
          <p className="callout callout-warning small" role="status">
            {endedBecause}
          </p>
        )}
        <form onSubmit={(e) => void submit(e)} noValidate>
          <div className="field">
            <label htmlFor={inputId}>API key</label>
            <input
              id={inputId}
              className="input mono"
              type="password"
              autoComplete="off"
              spellCheck={false}
              placeholder="kiln_…"
              value={key}
              autoFocus
              aria-invalid={error ? true : undefined}
              aria-describedby={error ? errorId : undefined}
              onChange={(e) => setKey(e.currentTarget.value)}
            />
            <p id={errorId} className="field-error" role="alert">
              {error}
            </p>
          </div>
          <button type="submit" className="btn btn-primary btn-block" disabled={busy}>
            {busy ? 'Checking the key…' : 'Sign in'}
          </button>
        </form>
        <p className="muted small signin-note">
          The key stays in this browser tab only (session storage) and is sent to the API as a Bearer token. Your
          operator creates tenants and keys with <code>POST /v1/admin/tenants</code>.
        </p>
      </div>
    </main>
  );
}
