import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, type EntityManager } from 'typeorm';
import { KilnConfig } from '@kiln/config';
import { ErrorCode, KilnError } from '@kiln/contracts';
import { TelemetryPartitions, uuid7Millis, WebhookEmitter } from '@kiln/core';
import type { RolloutArm } from '@kiln/database';
import { type DeviceClass, deviceClassOf, validateFingerprint } from '@kiln/matching';
import { addCounts, summarizeReport } from './report-summary.js';
import type { TelemetryAckDto, TelemetryBatchDto, TelemetryReportDto } from './telemetry.dto.js';
import { scopeAllows } from '../auth/auth-context.js';

/** Reports from further back than this are refused (a device's clock, or a queue kept too long). */
const MAX_REPORT_AGE_MS = 7 * 86_400_000;
/** ... and from further ahead than this (a device clock far in the future would fill a month no one drops). */
const MAX_REPORT_SKEW_MS = 3_600_000;

interface Accepted {
  report: TelemetryReportDto;
  modelId: string;
  subject: string;
  rollout: { id: string; stage: number; arm: RolloutArm } | null;
}

interface EvidenceRow {
  subject: string;
  modelId: string;
  artifactId: string | null;
  reports: number;
  failures: number;
  failureCodes: Record<string, number>;
  otherErrors: number;
  speedupSamples: number;
  logSum: number;
  logSqSum: number;
}

interface StatsRow {
  rolloutId: string;
  stage: number;
  arm: RolloutArm;
  reports: number;
  failures: number;
  failureCodes: Record<string, number>;
  latencySamples: number;
  logSum: number;
  logSqSum: number;
}

/**
 * Device reports in (POST /v1/telemetry): checked against the tenant's own records, stored raw (deduplicated by
 * report id) and added to the rollups the resolver and the rollout gates read, all in one transaction, so a
 * report counts exactly once or not at all. docs/fleet.md.
 */
@Injectable()
export class TelemetryService {
  constructor(
    @InjectDataSource() private readonly dataSource: DataSource,
    private readonly partitions: TelemetryPartitions,
    private readonly config: KilnConfig,
    private readonly webhooks: WebhookEmitter,
  ) {}

  /**
   * `modelScope`: the models the reporting token is enrolled for; reports about any other model are rejected (a
   * device token for model X cannot feed evidence, or rollout gates, of model Y).
   */
  async ingest(
    tenantId: string,
    batch: TelemetryBatchDto,
    modelScope: readonly string[],
    now = Date.now(),
  ): Promise<TelemetryAckDto> {
    const checked = validateFingerprint(batch.fingerprint);
    if (!checked.ok) {
      throw new KilnError(ErrorCode.VALIDATION_FAILED, `Invalid fingerprint: ${checked.errors.join('; ')}`, {
        problems: checked.errors,
      });
    }
    const deviceClass = deviceClassOf(checked.value);
    const rejected: TelemetryAckDto['rejected'] = [];
    const reject = (r: TelemetryReportDto, reason: string): void =>
      void rejected.push({ reportId: r.reportId, reason });

    // Each report id once per batch (a device re-sending a report inside one batch is the same report).
    const unique = [...new Map(batch.reports.map((r) => [r.reportId.toLowerCase(), r])).values()];
    const timely: TelemetryReportDto[] = [];
    for (const r of unique) {
      const ms = uuid7Millis(r.reportId);
      if (ms === null) reject(r, 'reportId is not a UUIDv7');
      else if (ms < now - MAX_REPORT_AGE_MS) reject(r, 'older than 7 days');
      else if (ms > now + MAX_REPORT_SKEW_MS) reject(r, "more than an hour ahead of the server's clock");
      else if (r.outcome === 'failed' && !r.errorCode) reject(r, 'a failed run needs its errorCode');
      else timely.push(r);
    }
    const accepted = await this.resolveRecords(tenantId, timely, modelScope, reject);
    if (accepted.length === 0) return { accepted: 0, duplicates: 0, rejected, deviceClass: deviceClass.key };

    await this.partitions.ensure(
      new Set(accepted.map((a) => TelemetryPartitions.monthOfReport(uuid7Millis(a.report.reportId)!))),
    );
    const quarantined: Record<string, unknown>[] = [];
    const inserted = await this.dataSource.transaction(async (tx) => {
      const ids = await this.insertReports(tx, tenantId, batch, deviceClass, accepted);
      const fresh = accepted.filter((a) => ids.has(a.report.reportId.toLowerCase()));
      const rows = checked.value as unknown as Record<string, unknown>;
      quarantined.push(...(await this.addToRollups(tx, tenantId, deviceClass, rows, fresh)));
      return fresh.length;
    });
    for (const data of quarantined) await this.webhooks.emit(tenantId, 'artifact.quarantined', data);
    return { accepted: inserted, duplicates: accepted.length - inserted, rejected, deviceClass: deviceClass.key };
  }

  /** Each report's version, artifact and rollout must be the tenant's own and agree with each other. */
  private async resolveRecords(
    tenantId: string,
    reports: TelemetryReportDto[],
    modelScope: readonly string[],
    reject: (r: TelemetryReportDto, reason: string) => void,
  ): Promise<Accepted[]> {
    if (reports.length === 0) return [];
    const uniq = (xs: (string | undefined)[]): string[] => [...new Set(xs.filter((x): x is string => !!x))];
    const versions = new Map(
      (
        await this.dataSource.query<{ id: string; model_id: string; content_hash: string; model_name: string }[]>(
          `SELECT v.id, v.model_id, v.content_hash, m.name AS model_name
             FROM model_versions v JOIN models m ON m.id = v.model_id
            WHERE v.tenant_id = $1 AND v.id = ANY($2::uuid[])`,
          [tenantId, uniq(reports.map((r) => r.versionId))],
        )
      ).map((v) => [v.id, v]),
    );
    const artifactIds = uniq(reports.map((r) => r.artifactId));
    const artifacts = new Map(
      artifactIds.length === 0
        ? []
        : (
            await this.dataSource.query<{ id: string; model_content_hash: string }[]>(
              `SELECT id, model_content_hash FROM artifacts WHERE tenant_id = $1 AND id = ANY($2::uuid[])`,
              [tenantId, artifactIds],
            )
          ).map((a) => [a.id, a]),
    );
    const rolloutIds = uniq(reports.map((r) => r.rolloutId));
    const rollouts = new Map(
      rolloutIds.length === 0
        ? []
        : (
            await this.dataSource.query<
              { id: string; stage_index: number; from_version_id: string; to_version_id: string }[]
            >(
              `SELECT id, stage_index, from_version_id, to_version_id FROM rollouts WHERE tenant_id = $1 AND id = ANY($2::uuid[])`,
              [tenantId, rolloutIds],
            )
          ).map((r) => [r.id, r]),
    );
    const out: Accepted[] = [];
    for (const r of reports) {
      const version = versions.get(r.versionId.toLowerCase());
      if (!version || version.model_id !== r.modelId.toLowerCase()) {
        reject(r, 'no such model version for this tenant');
        continue;
      }
      if (!scopeAllows(modelScope, version.model_name)) {
        reject(r, `this token is not enrolled for model "${version.model_name}"`);
        continue;
      }
      let subject = `portable:${version.id}`;
      if (r.artifactId) {
        const artifact = artifacts.get(r.artifactId.toLowerCase());
        if (!artifact || artifact.model_content_hash !== version.content_hash) {
          reject(r, 'no such artifact of this model version for this tenant');
          continue;
        }
        subject = artifact.id;
      }
      let rollout: Accepted['rollout'] = null;
      const row = r.rolloutId ? rollouts.get(r.rolloutId.toLowerCase()) : undefined;
      // The arm is what the report is about (never what the device says): the new version or the previous one.
      if (row && (row.to_version_id === version.id || row.from_version_id === version.id)) {
        rollout = { id: row.id, stage: row.stage_index, arm: row.to_version_id === version.id ? 'new' : 'previous' };
      }
      out.push({ report: r, modelId: version.model_id, subject, rollout });
    }
    return out;
  }

  /** One multi-row INSERT (unnest) ... ON CONFLICT DO NOTHING; returns the ids that were new. */
  private async insertReports(
    tx: EntityManager,
    tenantId: string,
    batch: TelemetryBatchDto,
    deviceClass: DeviceClass,
    accepted: Accepted[],
  ): Promise<Set<string>> {
    const col = <T>(f: (a: Accepted) => T): T[] => accepted.map(f);
    const rows = await tx.query<{ report_id: string }[]>(
      `INSERT INTO telemetry_reports (report_id, tenant_id, device_id, device_class, model_id, version_id, artifact_id, ran, outcome, failure_stage, error_code, latency, rollout_id, rollout_stage, rollout_arm, runtime_version)
       SELECT r.report_id, $1, $2, $3, r.model_id, r.version_id, r.artifact_id, r.ran, r.outcome, r.failure_stage, r.error_code, r.latency, r.rollout_id, r.rollout_stage, r.rollout_arm, $4
       FROM unnest($5::uuid[], $6::uuid[], $7::uuid[], $8::uuid[], $9::text[], $10::text[], $11::text[], $12::text[], $13::jsonb[], $14::uuid[], $15::int[], $16::text[])
         AS r(report_id, model_id, version_id, artifact_id, ran, outcome, failure_stage, error_code, latency, rollout_id, rollout_stage, rollout_arm)
       ON CONFLICT (report_id) DO NOTHING
       RETURNING report_id`,
      [
        tenantId,
        batch.deviceId,
        deviceClass.key,
        batch.runtimeVersion ?? '',
        col((a) => a.report.reportId),
        col((a) => a.modelId),
        col((a) => a.report.versionId),
        col((a) => a.report.artifactId ?? null),
        col((a) => a.report.ran),
        col((a) => a.report.outcome),
        col((a) => a.report.failureStage ?? null),
        col((a) => a.report.errorCode ?? null),
        col((a) =>
          JSON.stringify(
            a.report.latency.map((l) => ({
              inputShapes: l.inputShapes,
              artifactMs: l.artifactMs ?? null,
              portableMs: l.portableMs ?? null,
              runs: l.runs,
            })),
          ),
        ),
        col((a) => a.rollout?.id ?? null),
        col((a) => a.rollout?.stage ?? null),
        col((a) => a.rollout?.arm ?? null),
      ],
    );
    return new Set(rows.map((r) => r.report_id.toLowerCase()));
  }

  /** Adds the new reports to fleet_evidence and rollout_stats (keys in a fixed order: no deadlocks between batches). */
  private async addToRollups(
    tx: EntityManager,
    tenantId: string,
    deviceClass: DeviceClass,
    fingerprint: Record<string, unknown>,
    fresh: Accepted[],
  ): Promise<Record<string, unknown>[]> {
    const quarantined: Record<string, unknown>[] = [];
    const evidence = new Map<string, EvidenceRow>();
    const stats = new Map<string, StatsRow>();
    for (const a of fresh) {
      const s = summarizeReport(a.report);
      const e =
        evidence.get(a.subject) ??
        evidence
          .set(a.subject, {
            subject: a.subject,
            modelId: a.modelId,
            artifactId: a.report.artifactId ? a.subject : null,
            reports: 0,
            failures: 0,
            failureCodes: {},
            otherErrors: 0,
            speedupSamples: 0,
            logSum: 0,
            logSqSum: 0,
          })
          .get(a.subject)!;
      e.reports++;
      if (s.failure) {
        e.failures++;
        addCounts(e.failureCodes, a.report.errorCode ?? 'UNKNOWN');
      }
      if (s.otherError) e.otherErrors++;
      if (s.logSpeedup !== null && e.artifactId !== null) {
        e.speedupSamples++;
        e.logSum += s.logSpeedup;
        e.logSqSum += s.logSpeedup * s.logSpeedup;
      }
      if (a.rollout) {
        const key = `${a.rollout.id}|${a.rollout.stage}|${a.rollout.arm}`;
        const st =
          stats.get(key) ??
          stats
            .set(key, {
              rolloutId: a.rollout.id,
              stage: a.rollout.stage,
              arm: a.rollout.arm,
              reports: 0,
              failures: 0,
              failureCodes: {},
              latencySamples: 0,
              logSum: 0,
              logSqSum: 0,
            })
            .get(key)!;
        st.reports++;
        if (s.failure) {
          st.failures++;
          addCounts(st.failureCodes, a.report.errorCode ?? 'UNKNOWN');
        }
        if (s.logMs !== null) {
          st.latencySamples++;
          st.logSum += s.logMs;
          st.logSqSum += s.logMs * s.logMs;
        }
      }
    }
    for (const e of [...evidence.values()].sort((a, b) => (a.subject < b.subject ? -1 : 1))) {
      const [after] = await tx.query<{ reports: number; failures: number; failureCodes: Record<string, number> }[]>(
        `INSERT INTO fleet_evidence (tenant_id, subject, device_class, device_class_label, model_id, artifact_id, reports, failures, failure_codes, other_errors, speedup_samples, log_speedup_sum, log_speedup_sq_sum, sample_fingerprint, first_report_at, last_report_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, now(), now())
         ON CONFLICT (tenant_id, subject, device_class) DO UPDATE SET
           device_class_label = EXCLUDED.device_class_label,
           reports = fleet_evidence.reports + EXCLUDED.reports,
           failures = fleet_evidence.failures + EXCLUDED.failures,
           failure_codes = ${MERGE_COUNTS('fleet_evidence')},
           other_errors = fleet_evidence.other_errors + EXCLUDED.other_errors,
           speedup_samples = fleet_evidence.speedup_samples + EXCLUDED.speedup_samples,
           log_speedup_sum = fleet_evidence.log_speedup_sum + EXCLUDED.log_speedup_sum,
           log_speedup_sq_sum = fleet_evidence.log_speedup_sq_sum + EXCLUDED.log_speedup_sq_sum,
           sample_fingerprint = EXCLUDED.sample_fingerprint,
           last_report_at = now()
         RETURNING reports, failures, failure_codes AS "failureCodes"`,
        [
          tenantId,
          e.subject,
          deviceClass.key,
          deviceClass.label,
          e.modelId,
          e.artifactId,
          e.reports,
          e.failures,
          JSON.stringify(e.failureCodes),
          e.otherErrors,
          e.speedupSamples,
          e.logSum,
          e.logSqSum,
          JSON.stringify(fingerprint),
        ],
      );
      // The batch that takes an artifact past the quarantine threshold on this class tells the webhooks (once: the
      // rows are locked by the upsert, so concurrent batches see each other's counts).
      if (e.artifactId !== null && after) {
        const policy = {
          minFailures: this.config.KILN_QUARANTINE_MIN_FAILURES,
          rate: this.config.KILN_QUARANTINE_FAILURE_RATE,
        };
        const over = (reports: number, failures: number): boolean =>
          reports > 0 && failures >= policy.minFailures && failures / reports >= policy.rate;
        if (over(after.reports, after.failures) && !over(after.reports - e.reports, after.failures - e.failures)) {
          quarantined.push({
            artifactId: e.artifactId,
            modelId: e.modelId,
            deviceClass: deviceClass.key,
            deviceClassLabel: deviceClass.label,
            reports: after.reports,
            failures: after.failures,
            failureCodes: after.failureCodes,
          });
        }
      }
    }
    for (const st of [...stats.values()].sort((a, b) =>
      `${a.rolloutId}|${a.stage}|${a.arm}` < `${b.rolloutId}|${b.stage}|${b.arm}` ? -1 : 1,
    )) {
      await tx.query(
        `INSERT INTO rollout_stats (rollout_id, stage_index, device_class, arm, tenant_id, device_class_label, reports, failures, failure_codes, latency_samples, log_ms_sum, log_ms_sq_sum, last_report_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, now())
         ON CONFLICT (rollout_id, stage_index, device_class, arm) DO UPDATE SET
           reports = rollout_stats.reports + EXCLUDED.reports,
           failures = rollout_stats.failures + EXCLUDED.failures,
           failure_codes = ${MERGE_COUNTS('rollout_stats')},
           latency_samples = rollout_stats.latency_samples + EXCLUDED.latency_samples,
           log_ms_sum = rollout_stats.log_ms_sum + EXCLUDED.log_ms_sum,
           log_ms_sq_sum = rollout_stats.log_ms_sq_sum + EXCLUDED.log_ms_sq_sum,
           last_report_at = now()`,
        [
          st.rolloutId,
          st.stage,
          deviceClass.key,
          st.arm,
          tenantId,
          deviceClass.label,
          st.reports,
          st.failures,
          JSON.stringify(st.failureCodes),
          st.latencySamples,
          st.logSum,
          st.logSqSum,
        ],
      );
    }
    return quarantined;
  }
}

/** `{ "A": 1 }` merged with EXCLUDED's `{ "A": 2, "B": 1 }` into `{ "A": 3, "B": 1 }`, in SQL. */
function MERGE_COUNTS(table: string): string {
  return `(SELECT COALESCE(jsonb_object_agg(k, n), '{}'::jsonb) FROM (SELECT k, SUM(v) AS n FROM (
      SELECT key AS k, value::bigint AS v FROM jsonb_each_text(${table}.failure_codes)
      UNION ALL SELECT key, value::bigint FROM jsonb_each_text(EXCLUDED.failure_codes)) c GROUP BY k) s)`;
}
