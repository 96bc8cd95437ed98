import { Injectable } from '@nestjs/common';
import { LRUCache } from 'lru-cache';
import { InjectRepository } from '@nestjs/typeorm';
import { Repository } from 'typeorm';
import { KilnConfig } from '@kiln/config';
import { ErrorCode, KilnError } from '@kiln/contracts';
import { ArtifactEntity, ChannelEntity, ModelEntity, ModelVersionEntity } from '@kiln/database';
import { type Candidate, type DeviceFingerprint, resolveArtifact, validateFingerprint } from '@kiln/matching';
import { ObjectStorage, objectKeys } from '@kiln/storage';
import { scopeAllows } from '../auth/auth-context.js';
import type { ResolutionResponseDto, ResolveRequestDto } from './resolver.dto.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * How long a resolver answer may be reused. Fleets resolve the same model from many identical devices, so
 * answers are cached per (model reference, fingerprint, options); a channel move or a new artifact reaches
 * devices within this time. Presigned URLs in a cached answer stay valid far longer (KILN_PRESIGN_TTL_S).
 */
export const RESOLUTION_CACHE_TTL_MS = 5_000;

interface ResolutionContext {
  model: ModelEntity;
  version: ModelVersionEntity;
  selectedBy: 'version' | 'channel' | 'latest';
  channel: string | null;
  signed: ArtifactEntity[];
  unsigned: { artifactId: string; targetId: string; reasons: string[] }[];
}

/**
 * The resolver: which artifact of a model version a device should run. Matching itself is the pure
 * @kiln/matching library; this service finds the candidates, keeps unsigned artifacts out, and turns the
 * answer into short-lived presigned URLs. The portable graph is always part of the answer.
 */
@Injectable()
export class ResolverService {
  // Promises, so concurrent misses for one model share a single database round trip.
  private readonly contexts = new LRUCache<string, Promise<ResolutionContext>>({
    max: 10_000,
    ttl: RESOLUTION_CACHE_TTL_MS,
  });
  private readonly answers = new LRUCache<string, ResolutionResponseDto>({ max: 50_000, ttl: RESOLUTION_CACHE_TTL_MS });

  constructor(
    @InjectRepository(ModelEntity) private readonly models: Repository<ModelEntity>,
    @InjectRepository(ModelVersionEntity) private readonly versions: Repository<ModelVersionEntity>,
    @InjectRepository(ChannelEntity) private readonly channels: Repository<ChannelEntity>,
    @InjectRepository(ArtifactEntity) private readonly artifacts: Repository<ArtifactEntity>,
    private readonly storage: ObjectStorage,
    private readonly config: KilnConfig,
  ) {}

  /**
   * `modelScope`: the models the caller's key may reach (device tokens are enrolled for some); a model outside it
   * is refused with MODEL_NOT_ENROLLED (403), whether the request names it, its id or a channel of it.
   */
  async resolve(
    tenantId: string,
    dto: ResolveRequestDto,
    modelScope: readonly string[],
  ): Promise<ResolutionResponseDto> {
    const checked = validateFingerprint(dto.fingerprint);
    if (!checked.ok) {
      throw new KilnError(ErrorCode.VALIDATION_FAILED, `Invalid fingerprint: ${checked.errors.join('; ')}`, {
        problems: checked.errors,
      });
    }
    const contextKey = [tenantId, dto.model, dto.version ?? '', dto.channel ?? ''].join('\0');
    const answerKey =
      `${contextKey}\0${JSON.stringify(checked.value)}\0${(dto.acceptPrecisions ?? []).join(',')}` +
      `\0${dto.acceptInsecureBuilds === true ? 'insecure' : ''}`;
    const cached = this.answers.get(answerKey);
    if (cached) return inScope(cached, modelScope);
    const context = await this.context(tenantId, contextKey, dto);
    if (!scopeAllows(modelScope, context.model.name)) throw notEnrolled(context.model.name);
    const answer = await this.answer(context, checked.value, dto, tenantId);
    this.answers.set(answerKey, answer);
    return answer;
  }

  private context(tenantId: string, key: string, dto: ResolveRequestDto): Promise<ResolutionContext> {
    let pending = this.contexts.get(key);
    if (!pending) {
      pending = this.loadContext(tenantId, dto);
      this.contexts.set(key, pending);
      // Errors (unknown model, ...) are answered, not cached.
      pending.catch(() => this.contexts.delete(key));
    }
    return pending;
  }

  private async loadContext(tenantId: string, dto: ResolveRequestDto): Promise<ResolutionContext> {
    const found = await this.findVersion(tenantId, dto);
    const rows = await this.artifacts.find({ where: { tenantId, modelContentHash: found.version.contentHash } });
    return {
      ...found,
      signed: rows.filter((a) => a.signature !== ''),
      unsigned: rows
        .filter((a) => a.signature === '')
        .map((a) => ({
          artifactId: a.id,
          targetId: a.targetId,
          reasons: ['not signed (built before artifact signing existed)'],
        })),
    };
  }

  private async answer(
    { model, version, selectedBy, channel, signed, unsigned }: ResolutionContext,
    fingerprint: DeviceFingerprint,
    dto: ResolveRequestDto,
    tenantId: string,
  ): Promise<ResolutionResponseDto> {
    const candidates: Candidate[] = signed.map((a) => ({
      artifactId: a.id,
      targetId: a.targetId,
      manifest: a.manifest,
    }));
    const resolution = resolveArtifact(fingerprint, candidates, {
      acceptPrecisions: dto.acceptPrecisions,
      acceptInsecureBuilds: dto.acceptInsecureBuilds === true,
    });

    const ttl = this.config.KILN_PRESIGN_TTL_S;
    const fallbackUrl = await this.storage.presignGet(version.objectKey, ttl, `${model.name}-v${version.number}.pt2`);
    const chosen = resolution.chosen ? signed.find((a) => a.id === resolution.chosen!.artifactId)! : null;

    return {
      model: { id: model.id, name: model.name },
      version: { id: version.id, number: version.number, selectedBy, channel },
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
      return { model, version, selectedBy: 'version', channel: null };
    }
    if (channel !== null) {
      const row = await this.channels.findOne({
        where: { modelId: model.id, name: channel },
        relations: { version: true },
      });
      if (!row?.version) throw new KilnError(ErrorCode.NOT_FOUND, `Model "${model.name}" has no channel "${channel}".`);
      return { model, version: row.version, selectedBy: 'channel', channel };
    }
    const latest = await this.versions.findOne({ where: { modelId: model.id }, order: { number: 'DESC' } });
    if (!latest) throw new KilnError(ErrorCode.NOT_FOUND, `Model "${model.name}" has no versions yet.`);
    return { model, version: latest, selectedBy: 'latest', channel: null };
  }
}

function inScope(answer: ResolutionResponseDto, modelScope: readonly string[]): ResolutionResponseDto {
  if (!scopeAllows(modelScope, answer.model.name)) throw notEnrolled(answer.model.name);
  return answer;
}

export function notEnrolled(modelName: string): KilnError {
  return new KilnError(ErrorCode.MODEL_NOT_ENROLLED, `This device token is not enrolled for model "${modelName}".`);
}
