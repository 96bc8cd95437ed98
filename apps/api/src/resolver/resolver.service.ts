import { Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { In, Repository } from 'typeorm';
import { KilnConfig } from '@kiln/config';
import { ErrorCode, KilnError } from '@kiln/contracts';
import {
  ArtifactEntity,
  ChannelEntity,
  FleetEvidenceEntity,
  ModelEntity,
  ModelVersionEntity,
  RolloutEntity,
} from '@kiln/database';
import {
  type ArtifactEvidence,
  type Candidate,
  type DeviceClass,
  type DeviceFingerprint,
  deviceClassOf,
  type EvidencePolicy,
  inRolloutStage,
  resolveArtifact,
  validateFingerprint,
} from '@kiln/matching';
import { ObjectStorage, objectKeys } from '@kiln/storage';
import { scopeAllows } from '../auth/auth-context.js';
import { PortableSigningService } from '../portable-signing/portable-signing.service.js';
import type { ResolutionResponseDto, ResolveRequestDto, RolloutAssignmentDto } from './resolver.dto.js';
import { type CachedResolution, ResolutionCache } from './resolution-cache.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** One version a device may get: its record, its artifacts, and what each device class reported about them. */
interface VersionBundle {
  version: ModelVersionEntity;
  signed: ArtifactEntity[];
  unsigned: { artifactId: string; targetId: string; reasons: string[] }[];
  /** device class key → (artifactId → evidence). */
  evidence: Map<string, Map<string, ArtifactEvidence>>;
}

interface ResolutionContext {
  model: ModelEntity;
  selectedBy: 'version' | 'channel' | 'latest';
  channel: string | null;
  /** What the reference names (the channel's version, a pinned version, the latest). */
  current: VersionBundle;
  /**
   * The last completed rollout to the channel's version, when it rolled device classes back: those classes keep
   * the version the channel held before it (until the channel moves on).
   */
  exclusions: { row: RolloutEntity; previous: VersionBundle } | null;
  /** The channel's running or paused rollout: devices in its stage get `next`. */
  active: { row: RolloutEntity; next: VersionBundle } | null;
}

const NO_EVIDENCE: ReadonlyMap<string, ArtifactEvidence> = new Map();

/**
 * The resolver: which artifact of a model version a device should run. Matching itself is the pure
 * @kiln/matching library; this service finds the candidates, keeps unsigned artifacts out, reads the fleet
 * evidence of the device's class from its rollup (never the raw reports: one indexed read per model reference),
 * applies the channel's staged rollout, and turns the answer into short-lived presigned URLs. The portable graph,
 * with its signed manifest, is always part of the answer. What it reads and what it answers is cached in
 * ResolutionCache, which the fast path shares.
 */
@Injectable()
export class ResolverService {
  private readonly policy: Partial<EvidencePolicy>;

  constructor(
    @InjectRepository(ModelEntity) private readonly models: Repository<ModelEntity>,
    @InjectRepository(ModelVersionEntity) private readonly versions: Repository<ModelVersionEntity>,
    @InjectRepository(ChannelEntity) private readonly channels: Repository<ChannelEntity>,
    @InjectRepository(ArtifactEntity) private readonly artifacts: Repository<ArtifactEntity>,
    @InjectRepository(FleetEvidenceEntity) private readonly evidence: Repository<FleetEvidenceEntity>,
    @InjectRepository(RolloutEntity) private readonly rollouts: Repository<RolloutEntity>,
    private readonly storage: ObjectStorage,
    private readonly portableSigning: PortableSigningService,
    private readonly config: KilnConfig,
    private readonly cache: ResolutionCache<ResolutionContext>,
  ) {
    this.policy = {
      minSpeedupSamples: config.KILN_EVIDENCE_MIN_SAMPLES,
      quarantineMinFailures: config.KILN_QUARANTINE_MIN_FAILURES,
      quarantineFailureRate: config.KILN_QUARANTINE_FAILURE_RATE,
    };
  }

  /**
   * `modelScope`: the models the caller's key may reach (device tokens are enrolled for some); a model outside it
   * is refused with MODEL_NOT_ENROLLED (403), whether the request names it, its id or a channel of it.
   * `asArm` (views only: the fleet dashboard) answers as a device on that side of the channel's running rollout
   * would be answered, instead of deciding by its device id.
   */
  async resolve(
    tenantId: string,
    dto: ResolveRequestDto,
    modelScope: readonly string[],
    asArm?: 'new' | 'previous',
  ): Promise<ResolutionResponseDto> {
    return (await this.resolution(tenantId, dto, modelScope, asArm)).answer;
  }

  /** resolve(), as the cache holds it: with its JSON, for the fast path. */
  async resolution(
    tenantId: string,
    dto: ResolveRequestDto,
    modelScope: readonly string[],
    asArm?: 'new' | 'previous',
  ): Promise<CachedResolution> {
    const checked = validateFingerprint(dto.fingerprint);
    if (!checked.ok) {
      throw new KilnError(ErrorCode.VALIDATION_FAILED, `Invalid fingerprint: ${checked.errors.join('; ')}`, {
        problems: checked.errors,
      });
    }
    const contextKey = [tenantId, dto.model, dto.version ?? '', dto.channel ?? ''].join('\0');
    const cached = this.cache.context(contextKey, () => this.loadContext(tenantId, dto));
    const context = await cached.context;
    if (!scopeAllows(modelScope, context.model.name)) throw notEnrolled(context.model.name);
    const deviceClass = deviceClassOf(checked.value);
    const assignment = this.assign(context, deviceClass, dto.deviceId, asArm);
    // The answer depends on the device only through its fingerprint and, in a rollout, its arm.
    const answerKey = [
      contextKey,
      JSON.stringify(checked.value),
      (dto.acceptPrecisions ?? []).join(','),
      dto.acceptInsecureBuilds === true ? 'insecure' : '',
      dto.unmeasuredArtifacts ?? '',
      assignment.rollout?.arm ?? '',
      assignment.rollout?.reason ?? '',
    ].join('\0');
    return this.cache.answer(answerKey, cached, () =>
      this.answer(context, assignment, checked.value, deviceClass, dto, tenantId),
    );
  }

  /** Which version this device gets: the reference's, or one side of the channel's rollout. */
  private assign(
    context: ResolutionContext,
    deviceClass: DeviceClass,
    deviceId: string | undefined,
    asArm?: 'new' | 'previous',
  ): { bundle: VersionBundle; rollout: RolloutAssignmentDto | null } {
    const { active, exclusions } = context;
    // Outside any running rollout: the channel's version, unless a completed rollout rolled this class back.
    const base = (): { bundle: VersionBundle; excludedBy: RolloutEntity | null; reason: string | null } => {
      const state = exclusions?.row.classStates[deviceClass.key];
      return exclusions && state?.status === 'rolled_back'
        ? { bundle: exclusions.previous, excludedBy: exclusions.row, reason: state.reason }
        : { bundle: context.current, excludedBy: null, reason: null };
    };
    if (!active) {
      const b = base();
      if (!b.excludedBy) return { bundle: b.bundle, rollout: null };
      const row = b.excludedBy;
      return {
        bundle: b.bundle,
        rollout: {
          id: row.id,
          status: row.status,
          stageIndex: row.stageIndex,
          percent: row.stages[row.stageIndex] ?? 100,
          arm: 'previous',
          reason: `this device class was rolled back during the rollout (${b.reason ?? 'a gate broke'}); it keeps v${b.bundle.version.number}`,
        },
      };
    }
    const row = active.row;
    const percent = row.stages[row.stageIndex] ?? 100;
    const info = { id: row.id, status: row.status, stageIndex: row.stageIndex, percent };
    const previous = base().bundle;
    const classState = row.classStates[deviceClass.key];
    if (classState?.status === 'rolled_back') {
      return {
        bundle: previous,
        rollout: {
          ...info,
          arm: 'previous',
          reason: `this device class was rolled back (${classState.reason ?? 'a gate broke'}); it keeps v${previous.version.number}`,
        },
      };
    }
    if (asArm) {
      return {
        bundle: asArm === 'new' ? active.next : previous,
        rollout: { ...info, arm: asArm, reason: `as a device ${asArm === 'new' ? 'in' : 'outside'} the current stage` },
      };
    }
    if (!deviceId) {
      return {
        bundle: previous,
        rollout: {
          ...info,
          arm: 'previous',
          reason: 'no deviceId sent: devices without one keep the previous version',
        },
      };
    }
    const inStage = inRolloutStage(row.id, deviceId, percent);
    const paused = row.status === 'paused' ? ' (the rollout is paused at this stage)' : '';
    return {
      bundle: inStage ? active.next : previous,
      rollout: {
        ...info,
        arm: inStage ? 'new' : 'previous',
        reason: inStage
          ? `this device is in stage ${row.stageIndex + 1} of ${row.stages.length} (${percent} % of devices)${paused}: v${active.next.version.number}`
          : `this device is outside stage ${row.stageIndex + 1} (${percent} % of devices)${paused}: it keeps v${previous.version.number}`,
      },
    };
  }

  private async loadContext(tenantId: string, dto: ResolveRequestDto): Promise<ResolutionContext> {
    const found = await this.findVersion(tenantId, dto);
    const current = await this.bundle(tenantId, found.model, found.version);
    const context: ResolutionContext = {
      model: found.model,
      selectedBy: found.selectedBy,
      channel: found.channel,
      current,
      exclusions: null,
      active: null,
    };
    if (!found.channelId) return context;
    const other = async (id: string): Promise<VersionBundle | null> => {
      if (id === found.version.id) return current;
      const v = await this.versions.findOne({ where: { id, tenantId } });
      return v ? this.bundle(tenantId, found.model, v) : null;
    };
    const active = await this.rollouts.findOne({
      where: { channelId: found.channelId, status: In(['running', 'paused']) },
    });
    if (active) {
      const next = await other(active.toVersionId);
      if (next) context.active = { row: active, next };
    }
    const completed = await this.rollouts.findOne({
      where: { channelId: found.channelId, status: 'completed', toVersionId: found.version.id },
      order: { finishedAt: 'DESC' },
    });
    // Only while the channel still points where that rollout moved it (a later manual move ends the exclusions).
    const stillItsMove =
      completed?.finishedAt && found.channelUpdatedAt
        ? found.channelUpdatedAt.getTime() <= completed.finishedAt.getTime() + 5_000
        : false;
    if (completed && stillItsMove && Object.values(completed.classStates).some((c) => c.status === 'rolled_back')) {
      const previous = await other(completed.fromVersionId);
      if (previous) context.exclusions = { row: completed, previous };
    }
    return context;
  }

  private async bundle(tenantId: string, model: ModelEntity, version: ModelVersionEntity): Promise<VersionBundle> {
    // Not signed yet (the orchestrator signs it, after the upload): ask again, and serve it unsigned meanwhile.
    void this.portableSigning.requestSignature(version);
    const rows = await this.artifacts.find({ where: { tenantId, modelContentHash: version.contentHash } });
    const signed = rows.filter((a) => a.signature !== '');
    const evidence = new Map<string, Map<string, ArtifactEvidence>>();
    if (signed.length > 0) {
      const found = await this.evidence.find({ where: { tenantId, artifactId: In(signed.map((a) => a.id)) } });
      for (const e of found) {
        const n = e.speedupSamples;
        const mean = n > 0 ? e.logSpeedupSum / n : 0;
        const variance =
          n > 1 ? Math.max(0, (e.logSpeedupSqSum - (e.logSpeedupSum * e.logSpeedupSum) / n) / (n - 1)) : 0;
        const byArtifact = evidence.get(e.deviceClass) ?? evidence.set(e.deviceClass, new Map()).get(e.deviceClass)!;
        byArtifact.set(e.artifactId!, {
          reports: e.reports,
          failures: e.failures,
          failureCodes: e.failureCodes,
          speedupSamples: n,
          logSpeedupMean: mean,
          logSpeedupVariance: variance,
        });
      }
    }
    return {
      version,
      signed,
      unsigned: rows
        .filter((a) => a.signature === '')
        .map((a) => ({
          artifactId: a.id,
          targetId: a.targetId,
          reasons: ['not signed (built before artifact signing existed)'],
        })),
      evidence,
    };
  }

  private async answer(
    context: ResolutionContext,
    assignment: { bundle: VersionBundle; rollout: RolloutAssignmentDto | null },
    fingerprint: DeviceFingerprint,
    deviceClass: DeviceClass,
    dto: ResolveRequestDto,
    tenantId: string,
  ): Promise<ResolutionResponseDto> {
    const { model, selectedBy, channel } = context;
    const { version, signed, unsigned, evidence } = assignment.bundle;
    const candidates: Candidate[] = signed.map((a) => ({
      artifactId: a.id,
      targetId: a.targetId,
      manifest: a.manifest,
    }));
    const resolution = resolveArtifact(fingerprint, candidates, {
      acceptPrecisions: dto.acceptPrecisions,
      acceptInsecureBuilds: dto.acceptInsecureBuilds === true,
      unmeasuredArtifacts: dto.unmeasuredArtifacts,
      evidence: evidence.get(deviceClass.key) ?? NO_EVIDENCE,
      deviceClass: deviceClass.label,
      evidencePolicy: this.policy,
    });

    const ttl = this.config.KILN_PRESIGN_TTL_S;
    const fallbackUrl = await this.storage.presignGet(version.objectKey, ttl, `${model.name}-v${version.number}.pt2`);
    const fallbackManifestUrl = version.portableManifestKey
      ? await this.storage.presignGet(version.portableManifestKey, ttl)
      : { url: '' };
    const chosen = resolution.chosen ? signed.find((a) => a.id === resolution.chosen!.artifactId)! : null;

    return {
      model: { id: model.id, name: model.name },
      version: { id: version.id, number: version.number, selectedBy, channel },
      deviceClass,
      rollout: assignment.rollout,
      artifact:
        chosen && resolution.chosen
          ? {
              id: chosen.id,
              targetId: chosen.targetId,
              sha256: chosen.manifestSha256,
              size: chosen.sizeBytes,
              signature: chosen.signature,
              signingKeyId: chosen.signingKeyId,
              manifestUrl: (await this.storage.presignGet(chosen.manifestKey, ttl)).url,
              parts: await Promise.all(
                chosen.manifest.parts.map(async (p) => ({
                  role: p.role,
                  sha256: p.sha256,
                  size: p.size,
                  ...(p.entry ? { entry: p.entry } : {}),
                  url: (await this.storage.presignGet(objectKeys.blob(tenantId, p.sha256), ttl)).url,
                })),
              ),
              expiresAt: fallbackUrl.expiresAt,
              speedup: resolution.chosen.speedup,
              basis: resolution.chosen.basis,
              speedupCi: resolution.chosen.speedupCi,
              reasons: resolution.chosen.reasons,
            }
          : null,
      fallback: {
        kind: 'portable',
        url: fallbackUrl.url,
        // The object devices download is the stored (portable) archive, not the uploaded file.
        sha256: version.storedSha256,
        size: version.storedSizeBytes,
        expiresAt: fallbackUrl.expiresAt,
        reason: resolution.fallback.reason,
        manifestUrl: fallbackManifestUrl.url,
        manifestSha256: version.portableManifestSha256,
        signature: version.portableSignature,
        signingKeyId: version.portableSigningKeyId,
      },
      ranked: resolution.ranked,
      rejected: [...resolution.rejected, ...unsigned],
    };
  }

  private async findVersion(
    tenantId: string,
    dto: ResolveRequestDto,
  ): Promise<{
    model: ModelEntity;
    version: ModelVersionEntity;
    selectedBy: 'version' | 'channel' | 'latest';
    channel: string | null;
    channelId: string | null;
    channelUpdatedAt: Date | null;
  }> {
    const [ref, refChannel] = dto.model.split('@', 2) as [string, string | undefined];
    const channel = dto.channel ?? refChannel ?? null;
    if (channel !== null && dto.version !== undefined) {
      throw new KilnError(ErrorCode.VALIDATION_FAILED, 'Give a version or a channel, not both.');
    }
    const model = await this.models.findOne({
      where: UUID.test(ref) ? { tenantId, id: ref } : { tenantId, name: ref },
    });
    if (!model) throw new KilnError(ErrorCode.NOT_FOUND, `No model "${ref}".`);

    if (dto.version !== undefined) {
      const version = await this.versions.findOne({ where: { modelId: model.id, number: dto.version } });
      if (!version) throw new KilnError(ErrorCode.NOT_FOUND, `Model "${model.name}" has no version ${dto.version}.`);
      return { model, version, selectedBy: 'version', channel: null, channelId: null, channelUpdatedAt: null };
    }
    if (channel !== null) {
      const row = await this.channels.findOne({
        where: { modelId: model.id, name: channel },
        relations: { version: true },
      });
      if (!row?.version) throw new KilnError(ErrorCode.NOT_FOUND, `Model "${model.name}" has no channel "${channel}".`);
      return {
        model,
        version: row.version,
        selectedBy: 'channel',
        channel,
        channelId: row.id,
        channelUpdatedAt: row.updatedAt,
      };
    }
    const latest = await this.versions.findOne({ where: { modelId: model.id }, order: { number: 'DESC' } });
    if (!latest) throw new KilnError(ErrorCode.NOT_FOUND, `Model "${model.name}" has no versions yet.`);
    return { model, version: latest, selectedBy: 'latest', channel: null, channelId: null, channelUpdatedAt: null };
  }
}

export function notEnrolled(modelName: string): KilnError {
  return new KilnError(ErrorCode.MODEL_NOT_ENROLLED, `This device token is not enrolled for model "${modelName}".`);
}
