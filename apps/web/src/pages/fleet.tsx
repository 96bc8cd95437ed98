import { useMutation, useQueryClient, useQuery } from '@tanstack/react-query';
import { Link, useParams } from 'react-router';
import { fleetQuery, queryKeys } from '../api/queries.js';
import { useApi } from '../api/session.js';
import type { FleetClass, FleetEvidence, Rollout } from '../api/types.js';
import { PageHeader, useDocumentTitle } from '../components/layout.js';
import {
  Badge,
  Card,
  EmptyState,
  ErrorCallout,
  LoadingBlock,
  PageError,
  Skeleton,
  StatusBadge,
} from '../components/ui.js';
import { describeServing, formatInterval, isRolloutActive, rolloutStatusInfo, stageStates } from '../lib/fleet.js';
import { formatCount, formatDate, formatSpeedup, plural, relativeTime } from '../lib/format.js';

const REFRESH_MS = 4000;

/**
 * The fleet of one model@channel (docs/fleet.md): per device class, what the resolver serves it, what its devices
 * reported (on-device speedup next to the build host's figure, failures, quarantine), and the channel's staged
 * rollout with its history and controls. Refreshes itself while a rollout is moving.
 */
export function FleetPage() {
  const { modelId = '', channel = '' } = useParams();
  const api = useApi();
  const view = useQuery({
    ...fleetQuery(api, modelId, channel),
    // While a rollout moves, stages advance and devices report: keep the view current.
    refetchInterval: (q) => (isRolloutActive(q.state.data?.rollout) ? REFRESH_MS : false),
  });
  const v = view.data;
  useDocumentTitle(v ? `Fleet of ${v.model.name}@${v.channel}` : 'Fleet');

  if (view.error && !v) return <PageError error={view.error} onRetry={() => void view.refetch()} />;

  return (
    <div className="page">
      <PageHeader
        crumbs={[
          { label: 'Models', to: '/' },
          { label: v?.model.name ?? '…', to: `/models/${modelId}` },
          { label: 'Channels', to: `/models/${modelId}/channels` },
          { label: `${channel} fleet` },
        ]}
        title={v ? `Fleet of ${v.model.name}@${v.channel}` : <Skeleton width={300} height={30} />}
        subtitle={
          v ? (
            <>
              <code>{v.channel}</code> points at v{v.versionNumber}. Devices report each run; the resolver ranks
              artifacts for a device class by those reports, and stops serving one that fails on a class or runs slower
              there than the portable graph.
            </>
          ) : undefined
        }
      />
      {!v ? (
        <LoadingBlock lines={6} label="Loading the fleet" />
      ) : (
        <div className="stack">
          {v.rollout && <RolloutCard rollout={v.rollout} modelId={modelId} />}
          <Card
            title="Device classes"
            className="table-card"
            description="Grouped by OS, CPU level and model, torch build and GPUs."
          >
            {v.classes.length === 0 ? (
              <EmptyState title="No device has reported yet">
                Devices running{' '}
                <code>
                  kiln-device run {v.model.name}@{v.channel}
                </code>{' '}
                report here (unless they opt out with <code>--no-telemetry</code>).
              </EmptyState>
            ) : (
              <ul className="fleet-classes" aria-label="Device classes">
                {v.classes.map((c) => (
                  <ClassRow key={c.deviceClass} cls={c} />
                ))}
              </ul>
            )}
          </Card>
        </div>
      )}
    </div>
  );
}

function ClassRow({ cls }: { cls: FleetClass }) {
  return (
    <li className="fleet-class" data-class-label={cls.label} data-rollout-status={cls.rolloutStatus ?? 'none'}>
      <div className="fleet-class-head">
        <div>
          <strong>{cls.label}</strong>
          <div className="muted small">
            {plural(cls.reports, 'run')} reported · {plural(cls.failures, 'failure')} · last{' '}
            {relativeTime(cls.lastReportAt)}
          </div>
        </div>
        <div className="fleet-badges">
          {cls.rolloutStatus === 'rolled_back' && <Badge tone="danger">Rolled back</Badge>}
          {cls.rolloutStatus === 'active' && <Badge tone="progress">In rollout</Badge>}
          {cls.evidence.some((e) => e.quarantined) && <Badge tone="warning">Quarantined artifact</Badge>}
        </div>
      </div>
      {cls.rolloutReason && <p className="small fleet-reason">{cls.rolloutReason}</p>}
      <dl className="fleet-serves" aria-label={`What ${cls.label} gets`}>
        {cls.serves.map((s) => (
          <div key={s.arm} data-arm={s.arm}>
            <dt>{s.arm === 'current' ? 'Runs' : s.arm === 'new' ? 'In the rollout' : 'Outside the rollout'}</dt>
            <dd>
              <span className="mono">{describeServing(s)}</span>
              {s.speedup !== null && (
                <span className="muted small">
                  {' '}
                  · {formatSpeedup(s.speedup)} ({s.basis === 'device' ? 'measured on this class' : 'build host'})
                </span>
              )}
              {s.reasons[0] && <div className="muted small">{s.reasons[0]}</div>}
            </dd>
          </div>
        ))}
      </dl>
      <div className="table-scroll">
        <table className="table table-middle fleet-evidence">
          <thead>
            <tr>
              <th scope="col">Artifact</th>
              <th scope="col">Versions</th>
              <th scope="col">Runs</th>
              <th scope="col">Failures</th>
              <th scope="col">On-device speedup</th>
              <th scope="col">Build host</th>
            </tr>
          </thead>
          <tbody>
            {cls.evidence.map((e) => (
              <EvidenceRow key={e.artifactId ?? `portable-${e.versions.join(',')}`} e={e} />
            ))}
          </tbody>
        </table>
      </div>
    </li>
  );
}

function EvidenceRow({ e }: { e: FleetEvidence }) {
  const codes = Object.entries(e.failureCodes)
    .map(([code, n]) => `${code} ×${n}`)
    .join(', ');
  return (
    <tr data-target={e.targetId} data-quarantined={e.quarantined ? 'true' : 'false'}>
      <th scope="row" className="mono">
        {e.targetId === 'portable' ? 'portable graph' : e.targetId}
        {e.quarantined && (
          <>
            {' '}
            <Badge tone="warning">quarantined</Badge>
          </>
        )}
      </th>
      <td>{e.versions.map((n) => `v${n}`).join(', ')}</td>
      <td>{formatCount(e.reports)}</td>
      <td>
        {formatCount(e.failures)}
        {codes && <div className="muted small mono">{codes}</div>}
      </td>
      <td className="fleet-device-speedup">
        {e.deviceSpeedup !== null ? (
          <>
            <strong>{formatSpeedup(e.deviceSpeedup)}</strong>
            <div className="muted small">
              {formatInterval(e.deviceSpeedupCi)} · {plural(e.deviceSamples, 'run')}
            </div>
          </>
        ) : (
          <span className="muted small">{e.deviceSamples > 0 ? `${e.deviceSamples} timed, too few` : '—'}</span>
        )}
      </td>
      <td className="fleet-build-speedup">
        {e.buildHostSpeedup !== null ? (
          <>
            {formatSpeedup(e.buildHostSpeedup)}
            {e.buildHostSpeedupCi && <div className="muted small">{formatInterval(e.buildHostSpeedupCi)}</div>}
          </>
        ) : (
          '—'
        )}
      </td>
    </tr>
  );
}

function RolloutCard({ rollout, modelId }: { rollout: Rollout; modelId: string }) {
  const api = useApi();
  const queryClient = useQueryClient();
  const act = useMutation({
    mutationFn: (action: 'pause' | 'resume' | 'rollback') =>
      api.post<Rollout>(`/v1/rollouts/${rollout.id}/${action}`, {}),
    // A rollback moves the channel too: its list and history change with the fleet view (all under its key).
    onSuccess: () => void queryClient.invalidateQueries({ queryKey: queryKeys.channels(modelId) }),
  });
  const busy = act.isPending ? act.variables : null;
  const error = act.error;
  const active = isRolloutActive(rollout);
  return (
    <Card
      title={`Rollout of v${rollout.toVersion} (from v${rollout.fromVersion})`}
      description={`${rollout.percent} % of devices at stage ${rollout.stageIndex + 1} of ${rollout.stages.length}; gates: error rate ≤ ${Math.round(rollout.gates.maxErrorRate * 100)} %, latency ≤ ${rollout.gates.maxLatencyRatio}× the previous version, each stage held ${rollout.gates.holdSeconds} s`}
      actions={
        <div className="row-actions" data-rollout-state={rollout.status}>
          <StatusBadge info={rolloutStatusInfo(rollout.status)} />
          {rollout.status === 'running' && (
            <button
              type="button"
              className="btn btn-secondary btn-sm"
              disabled={busy !== null}
              onClick={() => act.mutate('pause')}
            >
              {busy === 'pause' ? 'Pausing…' : 'Pause'}
            </button>
          )}
          {rollout.status === 'paused' && (
            <button
              type="button"
              className="btn btn-secondary btn-sm"
              disabled={busy !== null}
              onClick={() => act.mutate('resume')}
            >
              {busy === 'resume' ? 'Resuming…' : 'Resume'}
            </button>
          )}
          {active && (
            <button
              type="button"
              className="btn btn-danger btn-sm"
              disabled={busy !== null}
              onClick={() => act.mutate('rollback')}
            >
              {busy === 'rollback' ? 'Rolling back…' : 'Roll back'}
            </button>
          )}
        </div>
      }
    >
      <div className="card-pad stack">
        <ol className="rollout-stages" aria-label="Stages">
          {stageStates(rollout).map((s, i) => (
            <li
              key={i}
              className={`rollout-stage rollout-stage-${s.state}`}
              aria-current={s.state === 'current' ? 'step' : undefined}
            >
              {s.percent} %
            </li>
          ))}
        </ol>
        {error && <ErrorCallout error={error} title="The rollout did not change" />}
        {rollout.classes.length > 0 && (
          <ul className="rollout-classes" aria-label="Device classes in the rollout">
            {rollout.classes.map((c) => (
              <li key={c.deviceClass} data-class-status={c.status}>
                <Badge tone={c.status === 'rolled_back' ? 'danger' : 'progress'}>
                  {c.status === 'rolled_back' ? 'rolled back' : 'active'}
                </Badge>{' '}
                {c.label}
              </li>
            ))}
          </ul>
        )}
        <ol className="timeline" aria-label="Rollout history">
          {rollout.events.map((e, i) => (
            <li key={`${e.at}-${i}`} data-event={e.kind}>
              <span className="timeline-dot" aria-hidden="true" />
              <div>
                <strong>{e.message}</strong>
                <div className="muted small">
                  {relativeTime(e.at)} · {formatDate(e.at)} ·{' '}
                  {e.actor === 'gate' ? (
                    'by the gates'
                  ) : (
                    <>
                      by key <code>{e.actor.slice(0, 8)}</code>
                    </>
                  )}
                </div>
              </div>
            </li>
          ))}
        </ol>
        <p className="muted small">
          <Link to={`/models/${rollout.modelId}/channels`}>Channel history</Link>
        </p>
      </div>
    </Card>
  );
}
