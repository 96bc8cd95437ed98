// Charts as plain HTML bars: they read as text to screen readers, reflow on small screens, and weigh
// nothing. Bar lengths are relative to a rounded axis maximum (niceCeil) so charts compare at a glance.
import { formatMs, formatSpeedup } from '../lib/format.js';
import { niceCeil } from '../lib/graph-summary.js';

export interface BarDatum {
  key: string;
  label: string;
  value: number;
  title?: string;
  muted?: boolean;
}

export function BarList({ data, label, unit = '' }: { data: BarDatum[]; label: string; unit?: string }) {
  const max = niceCeil(Math.max(...data.map((d) => d.value), 1));
  return (
    <ul className="barlist" aria-label={label}>
      {data.map((d) => (
        <li key={d.key} className={d.muted ? 'barlist-row muted-row' : 'barlist-row'} title={d.title}>
          <span className="barlist-label">{d.label}</span>
          <span className="barlist-track" aria-hidden="true">
            <span className="barlist-bar" style={{ width: `${(d.value / max) * 100}%` }} />
          </span>
          <span className="barlist-value">
            {d.value.toLocaleString('en-US')}
            {unit && <span className="sr-only"> {unit}</span>}
          </span>
        </li>
      ))}
    </ul>
  );
}

export interface TimingDatum {
  key: string;
  label: string;
  eagerMs: number;
  compiledMs: number;
  speedup: number;
}

/** Eager (portable graph) vs compiled time per target, with the speedup. Shorter is faster. */
export function TimingChart({ data }: { data: TimingDatum[] }) {
  const max = niceCeil(Math.max(...data.flatMap((d) => [d.eagerMs, d.compiledMs]), 0.001));
  const best = Math.max(...data.map((d) => d.speedup));
  return (
    <figure className="timing-chart">
      <div className="chart-legend" aria-hidden="true">
        <span>
          <span className="swatch swatch-eager" /> Eager (portable graph)
        </span>
        <span>
          <span className="swatch swatch-compiled" /> Compiled artifact
        </span>
        <span className="muted">Median time per call · shorter is faster</span>
      </div>
      <ul className="timing-rows" aria-label="Eager and compiled time per call, and the speedup, per target">
        {data.map((d) => (
          <li key={d.key} className="timing-row">
            <span className="timing-label">{d.label}</span>
            <span className="timing-bars">
              <span className="timing-bar-line">
                <span className="timing-track" aria-hidden="true">
                  <span className="timing-bar eager" style={{ width: `${(d.eagerMs / max) * 100}%` }} />
                </span>
                <span className="timing-value">
                  <span className="sr-only">eager </span>
                  {formatMs(d.eagerMs)}
                </span>
              </span>
              <span className="timing-bar-line">
                <span className="timing-track" aria-hidden="true">
                  <span className="timing-bar compiled" style={{ width: `${(d.compiledMs / max) * 100}%` }} />
                </span>
                <span className="timing-value">
                  <span className="sr-only">compiled </span>
                  {formatMs(d.compiledMs)}
                </span>
              </span>
            </span>
            <span className={d.speedup === best && data.length > 1 ? 'timing-speedup best' : 'timing-speedup'}>
              <span className="sr-only">speedup </span>
              {formatSpeedup(d.speedup)}
            </span>
          </li>
        ))}
      </ul>
    </figure>
  );
}
