import { useEffect, useState } from 'react';
import { ApiError, type ApiClient } from '../api/client.js';
import type { Compilation, EventsToken } from '../api/types.js';
import { isTerminalCompilation } from '../lib/status.js';

/**
 * How the page hears about changes: `live` (server-sent events), `polling` (EventSource unavailable or
 * the stream kept failing), `done` (the compilation is over: nothing more will change).
 */
export type LiveMode = 'connecting' | 'live' | 'polling' | 'done';

const POLL_MS = 3000;
/** Stream failures in a row before the page gives up on events and polls instead. */
const MAX_STREAM_FAILURES = 3;

export interface LiveCompilation {
  compilation: Compilation | undefined;
  error: ApiError | null;
  mode: LiveMode;
  /** Replace the state after a mutation (cancel) answered with the new compilation. */
  update: (c: Compilation) => void;
}

/**
 * A compilation kept current: first over server-sent events (GET /v1/compilations/:id/events, opened with
 * a short-lived token, since EventSource cannot send the API key header), and by polling GET
 * /v1/compilations/:id when events are not available.
 */
export function useLiveCompilation(api: ApiClient, compilationId: string): LiveCompilation {
  const [compilation, setCompilation] = useState<Compilation | undefined>(undefined);
  const [error, setError] = useState<ApiError | null>(null);
  const [mode, setMode] = useState<LiveMode>('connecting');

  useEffect(() => {
    let stopped = false;
    let source: EventSource | null = null;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let failures = 0;
    const controller = new AbortController();

    const accept = (c: Compilation): boolean => {
      if (stopped) return true;
      setCompilation(c);
      setError(null);
      if (isTerminalCompilation(c.status)) {
        stop();
        setMode('done');
        return true;
      }
      return false;
    };

    const stop = (): void => {
      stopped = true;
      source?.close();
      source = null;
      clearTimeout(timer);
    };

    const poll = async (): Promise<void> => {
      if (stopped) return;
      try {
        const c = await api.get<Compilation>(`/v1/compilations/${compilationId}`, { signal: controller.signal });
        if (accept(c)) return;
      } catch (err) {
        if (stopped) return;
        if (err instanceof ApiError && err.status === 404) {
          setError(err);
          stop();
          return;
        }
        // Transient (network, 5xx): keep polling; the last state stays on screen.
      }
      if (!stopped) timer = setTimeout(() => void poll(), POLL_MS);
    };

    const startPolling = (): void => {
      if (stopped) return;
      source?.close();
      source = null;
      setMode('polling');
      void poll();
    };

    const openStream = async (): Promise<void> => {
      if (stopped) return;
      let token: EventsToken;
      try {
        token = await api.post<EventsToken>(`/v1/compilations/${compilationId}/events-token`, undefined, {
          signal: controller.signal,
        });
      } catch (err) {
        if (stopped) return;
        if (err instanceof ApiError && err.status === 404) {
          setError(err);
          stop();
          return;
        }
        startPolling();
        return;
      }
      if (stopped) return;
      const es = new EventSource(token.url);
      source = es;
      es.onopen = () => {
        failures = 0;
        if (!stopped) setMode('live');
      };
      es.addEventListener('compilation', (e) => {
        accept(JSON.parse((e as MessageEvent<string>).data) as Compilation);
      });
      es.addEventListener('end', () => {
        // The server closes after this; without close() EventSource would reconnect.
        es.close();
        if (!stopped) {
          setMode('done');
          // The final state came with the last `compilation` event; fetch once more to be sure.
          void poll();
        }
      });
      es.addEventListener('problem', (e) => {
        // The compilation went away while watched (its version was deleted).
        const body = JSON.parse((e as MessageEvent<string>).data) as { code: string; message: string };
        setError(new ApiError(404, body.code, body.message));
        stop();
      });
      es.onerror = () => {
        if (stopped || source !== es) return;
        // CONNECTING: the browser retries by itself (the token is still good for a few minutes).
        if (es.readyState !== EventSource.CLOSED) return;
        // CLOSED: refused (an expired token, too many streams, a proxy that does not stream).
        es.close();
        failures++;
        if (failures >= MAX_STREAM_FAILURES) startPolling();
        else timer = setTimeout(() => void openStream(), 1000 * failures);
      };
    };

    setCompilation(undefined);
    setError(null);
    setMode('connecting');
    // First paint from a plain GET (fast, and it tells a 404 apart), then live updates.
    api
      .get<Compilation>(`/v1/compilations/${compilationId}`, { signal: controller.signal })
      .then((c) => {
        if (accept(c)) return;
        if (typeof EventSource === 'undefined') startPolling();
        else void openStream();
      })
      .catch((err: unknown) => {
        if (stopped) return;
        if (err instanceof ApiError && err.status === 404) {
          setError(err);
          stop();
        } else {
          if (err instanceof ApiError) setError(err);
          startPolling();
        }
      });

    return () => {
      stop();
      controller.abort();
    };
  }, [api, compilationId]);

  return { compilation, error, mode, update: setCompilation };
}
