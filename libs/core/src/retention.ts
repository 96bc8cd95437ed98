import { Injectable, Logger } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { ErrorCode, KilnError } from '@kiln/contracts';
import { DeletionsService } from './deletions.js';

/** A tenant's rules (at least one is set). A version is kept while either rule keeps it. */
export interface RetentionRules {
  /** Keep each model's newest N versions (by version number). */
  keepLastVersions: number | null;
  /** Keep versions younger than D days. */
  maxAgeDays: number | null;
}

/** Why a version is kept: what points at it or is still working on it, or the rule that keeps it. */
export type KeepReason = 'channel' | 'rollout' | 'compiling' | 'newest' | 'young';

/** One version as the plan sees it (the facts a decision needs). */
export interface RetentionCandidate {
  versionId: string;
  modelId: string;
  modelName: string;
  number: number;
  createdAt: Date;
  /** 1 = the model's newest version. */
  rank: number;
  inChannel: boolean;
  inActiveRollout: boolean;
  compiling: boolean;
}

export interface RetentionDecision {
  candidate: RetentionCandidate;
  keep: boolean;
  /** Every reason that keeps it; empty when it goes. */
  keptBecause: KeepReason[];
}

/** What happened to one version a plan would delete. */
export type RetentionOutcome = 'would_delete' | 'deleted' | 'skipped';

export interface RetentionVersionResult {
  versionId: string;
  modelId: string;
  modelName: string;
  number: number;
  createdAt: string;
  outcome: RetentionOutcome;
  /** For `skipped`: why (the error code the delete answered, e.g. RESOURCE_IN_USE after a channel moved to it). */
  reason?: string;
}

export interface RetentionRunResult {
  dryRun: boolean;
  rules: RetentionRules | null;
  /** Versions the policy keeps. */
  kept: number;
  /** Versions it would delete (dry run) or tried to. */
  versions: RetentionVersionResult[];
  /** S3 objects and blobs the deletes' collections removed. */
  collected: { objectsDeleted: number; blobsDeleted: number };
}

const DAY_MS = 24 * 60 * 60 * 1000;

/**
 * The policy's decision for each version, pure (the unit test walks it): what points at a version or works on it
 * always keeps it; otherwise it stays while it is among its model's newest `keepLastVersions` or younger than
 * `maxAgeDays`. A rule that is not set keeps nothing by itself; with no rule set, everything is kept.
 */
export function decideRetention(
  candidates: readonly RetentionCandidate[],
  rules: RetentionRules,
  now: Date,
): RetentionDecision[] {
  const noRule = rules.keepLastVersions === null && rules.maxAgeDays === null;
  return candidates.map((candidate) => {
    const keptBecause: KeepReason[] = [];
    if (candidate.inChannel) keptBecause.push('channel');
    if (candidate.inActiveRollout) keptBecause.push('rollout');
    if (candidate.compiling) keptBecause.push('compiling');
    if (rules.keepLastVersions !== null && candidate.rank <= rules.keepLastVersions) keptBecause.push('newest');
    if (rules.maxAgeDays !== null && now.getTime() - candidate.createdAt.getTime() < rules.maxAgeDays * DAY_MS) {
      keptBecause.push('young');
    }
    return { candidate, keep: noRule || keptBecause.length > 0, keptBecause };
  });
}

/**
 * Tenants' retention policies (issue 16, item 2): plan which versions a policy lets go, and delete them through the
 * same DeletionsService as `DELETE /v1/versions/:id` (never forced: a channel that moves to a version between the
 * plan and its delete keeps it). Run by owners through the API (a dry run shows the plan) and on a schedule for every
 * tenant with a policy; each delete it makes is written to the audit log as the actor `retention`.
 */
@Injectable()
export class RetentionService {
  private readonly logger = new Logger(RetentionService.name);

  constructor(
    @InjectDataSource() private readonly dataSource: DataSource,
    private readonly deletions: DeletionsService,
  ) {}

  async rules(tenantId: string): Promise<RetentionRules | null> {
    const rows = await this.dataSource.query<RetentionRules[]>(
      `SELECT keep_last_versions AS "keepLastVersions", max_age_days AS "maxAgeDays"
         FROM retention_policies WHERE tenant_id = $1`,
      [tenantId],
    );
    return rows[0] ?? null;
  }

  async setRules(tenantId: string, rules: RetentionRules): Promise<RetentionRules> {
    if (rules.keepLastVersions === null && rules.maxAgeDays === null) {
      throw new KilnError(
        ErrorCode.VALIDATION_FAILED,
        'A retention policy needs keepLastVersions or maxAgeDays (or both); DELETE the policy to keep everything.',
      );
    }
    await this.dataSource.query(
      `INSERT INTO retention_policies (tenant_id, keep_last_versions, max_age_days, updated_at)
       VALUES ($1, $2, $3, now())
       ON CONFLICT (tenant_id) DO UPDATE
         SET keep_last_versions = EXCLUDED.keep_last_versions, max_age_days = EXCLUDED.max_age_days, updated_at = now()`,
      [tenantId, rules.keepLastVersions, rules.maxAgeDays],
    );
    return rules;
  }

  /** Removes the policy: the tenant keeps every version from now on. False when it had none. */
  async removeRules(tenantId: string): Promise<boolean> {
    const [, count] = await this.dataSource.query<[unknown, number]>(
      `DELETE FROM retention_policies WHERE tenant_id = $1`,
      [tenantId],
    );
    return count > 0;
  }

  /**
   * Applies the tenant's policy now (or, with `dryRun`, says what it would delete). `rules` overrides the stored
   * policy for a dry run of a policy not saved yet. `actor` names who asked, for the audit records of the deletes.
   */
  async run(
    tenantId: string,
    options: { dryRun: boolean; rules?: RetentionRules; actor?: { keyId: string | null; role: string | null } },
    now = new Date(),
  ): Promise<RetentionRunResult> {
    const rules = options.rules ?? (await this.rules(tenantId));
    const collected = { objectsDeleted: 0, blobsDeleted: 0 };
    if (!rules) return { dryRun: options.dryRun, rules: null, kept: 0, versions: [], collected };
    const decisions = decideRetention(await this.candidates(tenantId), rules, now);
    const doomed = decisions.filter((d) => !d.keep).map((d) => d.candidate);
    const versions: RetentionVersionResult[] = [];
    for (const v of doomed) {
      const result: RetentionVersionResult = {
        versionId: v.versionId,
        modelId: v.modelId,
        modelName: v.modelName,
        number: v.number,
        createdAt: v.createdAt.toISOString(),
        outcome: 'would_delete',
      };
      versions.push(result);
      if (options.dryRun) continue;
      try {
        const deletion = await this.deletions.deleteVersion(tenantId, v.versionId, false);
        result.outcome = 'deleted';
        collected.objectsDeleted += deletion.collected.objectsDeleted;
        collected.blobsDeleted += deletion.collected.blobsDeleted;
        await this.audit(tenantId, v, options.actor);
      } catch (err) {
        if (!(err instanceof KilnError)) throw err;
        // Something started using it since the plan (a channel moved to it), or it is already gone.
        result.outcome = 'skipped';
        result.reason = err.code;
      }
    }
    return { dryRun: options.dryRun, rules, kept: decisions.length - doomed.length, versions, collected };
  }

  /** The scheduled job: every tenant with a policy, one after the other; one tenant's failure does not stop the rest. */
  async runAll(): Promise<{ tenants: number; deleted: number; failed: number }> {
    const tenants = await this.dataSource.query<{ tenantId: string }[]>(
      `SELECT tenant_id AS "tenantId" FROM retention_policies ORDER BY tenant_id`,
    );
    let deleted = 0;
    let failed = 0;
    for (const { tenantId } of tenants) {
      try {
        const result = await this.run(tenantId, { dryRun: false });
        deleted += result.versions.filter((v) => v.outcome === 'deleted').length;
      } catch (err) {
        failed++;
        this.logger.warn(`Retention of tenant ${tenantId} failed: ${String(err)}`);
      }
    }
    return { tenants: tenants.length, deleted, failed };
  }

  private async candidates(tenantId: string): Promise<RetentionCandidate[]> {
    const rows = await this.dataSource.query<(Omit<RetentionCandidate, 'rank'> & { rank: string })[]>(
      `SELECT v.id AS "versionId", v.model_id AS "modelId", m.name AS "modelName", v.number, v.created_at AS "createdAt",
              ROW_NUMBER() OVER (PARTITION BY v.model_id ORDER BY v.number DESC) AS rank,
              EXISTS (SELECT 1 FROM channels c WHERE c.version_id = v.id) AS "inChannel",
              EXISTS (SELECT 1 FROM rollouts r WHERE r.status IN ('running', 'paused')
                        AND (r.from_version_id = v.id OR r.to_version_id = v.id)) AS "inActiveRollout",
              EXISTS (SELECT 1 FROM compilations k WHERE k.model_version_id = v.id
                        AND k.status NOT IN ('succeeded', 'partial', 'failed', 'cancelled')) AS compiling
         FROM model_versions v JOIN models m ON m.id = v.model_id
        WHERE v.tenant_id = $1
        ORDER BY m.name, v.number`,
      [tenantId],
    );
    return rows.map((r) => ({ ...r, rank: Number(r.rank) }));
  }

  private async audit(
    tenantId: string,
    v: RetentionCandidate,
    actor?: { keyId: string | null; role: string | null },
  ): Promise<void> {
    try {
      await this.dataSource.query(
        `INSERT INTO audit_events (tenant_id, actor, key_id, role, action, target_ids, result_ids, status, error_code, ip, user_agent)
         VALUES ($1, 'retention', $2, $3, 'DELETE /v1/versions/:versionId', $4, '{}', 200, NULL, '', 'kiln-retention')`,
        [
          tenantId,
          actor?.keyId ?? null,
          actor?.role ?? null,
          JSON.stringify({ versionId: v.versionId, modelId: v.modelId }),
        ],
      );
    } catch (err) {
      // As the API's audit interceptor: the delete happened, the log says what could not be recorded.
      this.logger.error(`Could not record the retention delete of version ${v.versionId}: ${String(err)}`);
    }
  }
}
