import { createContext, type ReactNode, useCallback, useContext, useMemo, useState } from 'react';
import { ApiClient } from './client.js';

/**
 * The signed-in API key lives in sessionStorage: it survives reloads of this tab, is not shared with
 * other tabs, and is gone when the tab closes. It is only ever sent in the Authorization header.
 */
const STORAGE_KEY = 'kiln.apiKey';

interface Session {
  api: ApiClient | null;
  /** "kiln_3f2a9c0d1e7b": the public part of the key, safe to show. */
  keyLabel: string | null;
  signIn: (key: string) => void;
  signOut: (reason?: string) => void;
  /** Why the last session ended, when it was not the user's doing ("Your key was not accepted"). */
  endedBecause: string | null;
}

const SessionContext = createContext<Session | null>(null);

function readStoredKey(): string | null {
  try {
    return sessionStorage.getItem(STORAGE_KEY);
  } catch {
    return null; // storage disabled: the user signs in for this page view only
  }
}

export function keyLabel(key: string): string {
  const m = /^(kiln|kdev)_([0-9a-f]{12})_/.exec(key);
  return m ? `${m[1]}_${m[2]}` : `${key.slice(0, 6)}…`;
}

export function SessionProvider({ children }: { children: ReactNode }) {
  const [key, setKey] = useState<string | null>(readStoredKey);
  const [endedBecause, setEndedBecause] = useState<string | null>(null);

  const signOut = useCallback((reason?: string) => {
    try {
      sessionStorage.removeItem(STORAGE_KEY);
    } catch {
      // nothing stored
    }
    setKey(null);
    setEndedBecause(reason ?? null);
  }, []);

  const signIn = useCallback((next: string) => {
    try {
      sessionStorage.setItem(STORAGE_KEY, next);
    } catch {
      // storage disabled: keep it in memory
    }
    setEndedBecause(null);
    setKey(next);
  }, []);

  const value = useMemo<Session>(
    () => ({
      api: key ? new ApiClient(key, () => signOut('The API no longer accepts this key. Sign in again.')) : null,
      keyLabel: key ? keyLabel(key) : null,
      signIn,
      signOut,
      endedBecause,
    }),
    [key, signIn, signOut, endedBecause],
  );
  return <SessionContext.Provider value={value}>{children}</SessionContext.Provider>;
}

export function useSession(): Session {
  const s = useContext(SessionContext);
  if (!s) throw new Error('useSession outside SessionProvider');
  return s;
}

/** The API client of a signed-in page (routes under RequireSession only). */
export function useApi(): ApiClient {
  const { api } = useSession();
  if (!api) throw new Error('useApi on a page without a session');
  return api;
}
