import type { Build } from '../api/types.js';
import { buildStatusInfo } from '../lib/status.js';
import { targetShortLabel } from '../lib/targets.js';

/** One small chip per target of a compilation, coloured by its build's status. */
export function BuildChips({ builds }: { builds: Build[] }) {
  return (
    <ul className="chips" aria-label="Builds">
      {builds.map((b) => {
        const info = buildStatusInfo(b.status);
        return (
          <li key={b.targetId} className={`chip chip-${info.tone}`} title={`${b.targetId}: ${info.label}`}>
            <span className={info.active ? 'badge-dot pulse' : 'badge-dot'} aria-hidden="true" />
            {targetShortLabel(b.targetId)}
            <span className="sr-only">: {info.label}</span>
          </li>
        );
      })}
    </ul>
  );
}
