import { Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { In, Repository } from 'typeorm';
import { KilnConfig } from '@kiln/config';
import { ErrorCode, KilnError } from '@kiln/contracts';
import { ALL_MODELS, ArtifactEntity, ChannelEntity, FleetEvidenceEntity, ModelVersionEntity } from '@kiln/database';
import { type DeviceFingerprint, readEvidence } from '@kiln/matching';
import { CHANNEL_NAME } from '../channels/channels.service.js';
import { ModelsService } from '../models/models.service.js';
import type { ResolutionResponseDto } from '../resolver/resolver.dto.js';
import { ResolverService } from '../resolver/resolver.service.js';
import { RolloutsService } from '../rollouts/rollouts.service.js';
import type { FleetClassDto, FleetEvidenceDto, FleetServingDto, FleetViewDto } from './fleet.dto.js';

/**
 * The fleet of one model@channel, per device class (the dashboard's fleet view): what the resolver serves the
 * class now, what its devices reported about each artifact (on-device speedup next to the build host's figure,
 * failures, quarantine), and the channel's rollout. Reads the rollups only.
 */
@Injectable()
export class FleetService {
  constructor(
    @InjectRepository(ChannelEntity) private readonly channels: Repository<ChannelEntity>,
    @InjectRepository(FleetEvidenceEntity) private readonly evidence: Repository<FleetEvidenceEntity>,
    @InjectRepository(ArtifactEntity) private readonly artifacts: Repository<ArtifactEntity>,
    @InjectRepository(ModelVersionEntity) private readonly versions: Repository<ModelVersionEntity>,
    private readonly models: ModelsService,
    private readonly resolver: ResolverService,
    private readonly rollouts: RolloutsService,
    private readonly config: KilnConfig,
  ) {}

  async view(tenantId: string, modelId: string, name: string): Promise<FleetViewDto> {
    if (!CHANNEL_NAME.test(name)) {
      throw new KilnError(
        ErrorCode.VALIDATION_FAILED,
        'Channel names are lower-case letters, digits, ".", "_" and "-".',
      );
    }
    const model = await this.models.require(tenantId, modelId);
    const channel = await this.channels.findOne({ where: { tenantId, modelId, name }, relations: { version: true } });
    if (!channel?.version) throw new KilnError(ErrorCode.NOT_FOUND, `This model has no channel "${name}".`);
    const rollout = await this.rollouts.latest(tenantId, channel.id, name);
    const completed =
      rollout?.status === 'completed' ? rollout : await this.rollouts.latestCompleted(tenantId, channel.id, name);
    // The classes that completed rollout rolled back still get the previous version while the channel points at its
    // version (the resolver's rule): they keep their state on the page after later rollouts that did not move it.
    const excluded = completed && completed.toVersion === channel.version.number ? completed : null;

    const rows = await this.evidence.find({
      where: { tenantId, modelId },
      order: { deviceClass: 'ASC', subject: 'ASC' },
    });
    const artifactIds = [...new Set(rows.map((r) => r.artifactId).filter((x): x is string => x !== null))];
    const artifacts = new Map(
      (artifactIds.length > 0 ? await this.artifacts.find({ where: { tenantId, id: In(artifactIds) } }) : []).map(
        (a) => [a.id, a],
      ),
    );
    const versions = await this.versions.find({
      where: { tenantId, modelId },
      select: { id: true, number: true, contentHash: true },
    });
    const policy = {
      minSpeedupSamples: this.config.KILN_EVIDENCE_MIN_SAMPLES,
      quarantineMinFailures: this.config.KILN_QUARANTINE_MIN_FAILURES,
      quarantineFailureRate: this.config.KILN_QUARANTINE_FAILURE_RATE,
    };

    const byClass = new Map<string, FleetEvidenceEntity[]>();
    for (const r of rows) (byClass.get(r.deviceClass) ?? byClass.set(r.deviceClass, []).get(r.deviceClass)!).push(r);
    const rolloutActive = rollout !== null && (rollout.status === 'running' || rollout.status === 'paused');

    const classes: FleetClassDto[] = [];
    for (const [deviceClass, list] of byClass) {
      const evidence: FleetEvidenceDto[] = list.map((r) => {
        const artifact = r.artifactId ? artifacts.get(r.artifactId) : undefined;
        const n = r.speedupSamples;
        const read = readEvidence(
          {
            reports: r.reports,
            failures: r.failures,
            failureCodes: r.failureCodes,
            speedupSamples: n,
            logSpeedupMean: n > 0 ? r.logSpeedupSum / n : 0,
            logSpeedupVariance: n > 1 ? Math.max(0, (r.logSpeedupSqSum - r.logSpeedupSum ** 2 / n) / (n - 1)) : 0,
          },
          policy,
        );
        const timing = artifact?.manifest.timing;
        const portableVersion = r.subject.startsWith('portable:') ? r.subject.slice('portable:'.length) : null;
        return {
          artifactId: r.artifactId,
          targetId: artifact?.targetId ?? 'portable',
          versions: versions
            .filter((v) => (artifact ? v.contentHash === artifact.modelContentHash : v.id === portableVersion))
            .map((v) => v.number)
            .sort((a, b) => a - b),
          reports: r.reports,
          failures: r.failures,
          failureCodes: r.failureCodes,
          otherErrors: r.otherErrors,
          quarantined: r.artifactId !== null && read.quarantined,
          deviceSpeedup: read.speedup?.value ?? null,
          deviceSpeedupCi: read.speedup?.ci ?? null,
          deviceSamples: n,
          buildHostSpeedup: timing?.speedup ?? null,
          buildHostSpeedupCi: timing?.speedupCi ?? null,
          lastReportAt: r.lastReportAt.toISOString(),
        };
      });
      // In a running rollout every class has a state (active or rolled back); otherwise only the classes the last
      // completed rollout rolled back keep one.
      const state = rolloutActive
        ? rollout.classes.find((c) => c.deviceClass === deviceClass)
        : excluded?.classes.find((c) => c.deviceClass === deviceClass && c.status === 'rolled_back');
      const latest = list.reduce((a, b) => (a.lastReportAt > b.lastReportAt ? a : b));
      const fingerprint = latest.sampleFingerprint as unknown as DeviceFingerprint;
      const arms: ('new' | 'previous' | undefined)[] = rolloutActive ? ['previous', 'new'] : [undefined];
      const serves: FleetServingDto[] = [];
      for (const arm of arms) {
        const answer = await this.resolver.resolve(
          tenantId,
          { model: `${model.id}@${name}`, fingerprint },
          [ALL_MODELS],
          arm,
        );
        serves.push(serving(answer, arm ?? 'current'));
      }
      classes.push({
        deviceClass,
        label: latest.deviceClassLabel,
        reports: list.reduce((a, r) => a + r.reports, 0),
        failures: list.reduce((a, r) => a + r.failures, 0),
        lastReportAt: latest.lastReportAt.toISOString(),
        rolloutStatus: state?.status ?? null,
        rolloutReason: state?.reason ?? null,
        serves,
        evidence,
      });
    }
    classes.sort((a, b) => (a.label < b.label ? -1 : a.label > b.label ? 1 : 0));
    return {
      model: { id: model.id, name: model.name },
      channel: name,
      versionNumber: channel.version.number,
      rollout,
      classes,
    };
  }
}

function serving(answer: ResolutionResponseDto, arm: string): FleetServingDto {
  const a = answer.artifact;
  return {
    arm,
    versionNumber: answer.version.number,
    artifactId: a?.id ?? null,
    targetId: a?.targetId ?? null,
    basis: a?.basis ?? null,
    speedup: a?.speedup ?? null,
    reasons: a
      ? a.reasons.filter((r) => !/^(glibc|GLIBCXX|torch|linux\/|ISA|verified|x86-64-v\d ≤)/.test(r))
      : [answer.fallback.reason],
  };
}
