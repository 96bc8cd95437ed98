import { useQuery, useQueryClient } from '@tanstack/react-query';
import { useEffect, useState } from 'react';
import { ApiError, type ApiClient } from '../api/client.js';
import { compilationQuery } from '../api/queries.js';
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
}

/** What the watch of one compilation has learnt about its transport; starts over for another compilation. */
interface Watch {
  compilationId: string;
  transport: 'stream' | 'polling';
  streamOpen: boolean;
  /** The server said the stream is over (`end`): the compilation is final. */
  ended: boolean;
  /** The compilation went away while watched. */
  problem: ApiError | null;
}

function newWatch(compilationId: string): Watch {
  return {
    compilationId,
    transport: typeof EventSource === 'undefined' ? 'polling' : 'stream',
    streamOpen: false,
    ended: false,
    problem: null,
  };
}

/**
 * A compilation kept current in the query cache (one copy, which every other reader of the compilation sees): first
 * a plain GET /v1/compilations/:id (fast, and it tells a 404 apart), then server-sent events
 * (GET /v1/compilations/:id/events, opened with a short-lived token, since EventSource cannot send the API key
 * header) written into the cache as they come, and polling of the GET when events are not available.
 */
export function useLiveCompilation(api: ApiClient, compilationId: string): LiveCompilation {
  const queryClient = useQueryClient();
  const [watch, setWatch] = useState(() => newWatch(compilationId));
  const current = watch.compilationId === compilationId ? watch : newWatch(compilationId);
  if (current !== watch) setWatch(current);

  const query = useQuery({
    ...compilationQuery(api, compilationId),
    refetchInterval: (q) => {
      const c = q.state.data;
      if (c && isTerminalCompilation(c.status)) return false;
      if (current.problem || q.state.error?.status === 404) return false;
      // Polling: chosen, after the stream ended (until the final state arrives), or when the first GET failed.
      return current.transport === 'polling' || current.ended || c === undefined ? POLL_MS : false;
    },
  });
  const compilation = query.data;
  const over = compilation !== undefined && isTerminalCompilation(compilation.status);
  const gone = current.problem !== null || query.error?.status === 404;
  const streaming = compilation !== undefined && !over && !gone && !current.ended && current.transport === 'stream';

  useEffect(() => {
    if (!streaming) return;
    let stopped = false;
    let source: EventSource | null = null;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let failures = 0;
    const controller = new AbortController();
    const { queryKey } = compilationQuery(api, compilationId);
    const learn = (patch: Partial<Watch>): void =>
      setWatch((w) => (w.compilationId === compilationId ? { ...w, ...patch } : w));

    const stop = (): void => {
      stopped = true;
      source?.close();
      source = null;
      clearTimeout(timer);
    };

    const openStream = async (): Promise<void> => {
      let token: EventsToken;
      try {
        token = await api.post<EventsToken>(`/v1/compilations/${compilationId}/events-token`, undefined, {
          signal: controller.signal,
        });
      } catch (err) {
        if (stopped) return;
        stop();
        if (err instanceof ApiError && err.status === 404) learn({ problem: err });
        else learn({ transport: 'polling' });
        return;
      }
      if (stopped) return;
      const es = new EventSource(token.url);
      source = es;
      es.onopen = () => {
        failures = 0;
        if (!stopped) learn({ streamOpen: true });
      };
      // A final state ends `streaming`, and with it this effect and the stream.
      es.addEventListener('compilation', (e) => {
        if (!stopped) queryClient.setQueryData(queryKey, JSON.parse((e as MessageEvent<string>).data) as Compilation);
      });
      es.addEventListener('end', () => {
        // The server closes after this; without close() EventSource would reconnect.
        stop();
        learn({ ended: true });
        // The final state came with the last `compilation` event; fetch once more to be sure.
        void queryClient.invalidateQueries({ queryKey, exact: true });
      });
      es.addEventListener('problem', (e) => {
        // The compilation went away while watched (its version was deleted).
        const body = JSON.parse((e as MessageEvent<string>).data) as { code: string; message: string };
        stop();
        learn({ problem: new ApiError(404, body.code, body.message) });
      });
      es.onerror = () => {
        if (stopped || source !== es) return;
        // CONNECTING: the browser retries by itself (the token is still good for a few minutes).
        if (es.readyState !== EventSource.CLOSED) return;
        // CLOSED: refused (an expired token, too many streams, a proxy that does not stream).
        es.close();
        failures++;
        if (failures >= MAX_STREAM_FAILURES) {
          stop();
          learn({ transport: 'polling' });
        } else timer = setTimeout(() => void openStream(), 1000 * failures);
      };
    };

    void openStream();
    return () => {
      stop();
      controller.abort();
    };
  }, [streaming, api, compilationId, queryClient]);

  // A failed refetch keeps the last state on screen; only a compilation that is gone, or one never loaded, is an error.
  const error =
    current.problem ?? (query.error && (query.error.status === 404 || compilation === undefined) ? query.error : null);
  const mode: LiveMode =
    over || current.ended
      ? 'done'
      : current.transport === 'polling' || (query.isError && compilation === undefined)
        ? 'polling'
        : current.streamOpen
          ? 'live'
          : 'connecting';
  return { compilation, error, mode };
}
