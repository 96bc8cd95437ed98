import { Injectable, Logger } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { Brackets, Repository } from 'typeorm';
import { ErrorCode, KilnError } from '@kiln/contracts';
import { AuditEventEntity } from '@kiln/database';
import type { AuditEventDto, AuditEventPageDto, ListAuditEventsQueryDto } from './audit.dto.js';

/** What the interceptor saw of one mutation. */
export interface AuditRecord {
  tenantId: string | null;
  actor: 'key' | 'admin';
  keyId: string | null;
  role: string | null;
  action: string;
  targetIds: Record<string, string>;
  resultIds: Record<string, string>;
  status: number;
  errorCode: string | null;
  ip: string;
  userAgent: string;
}

const toAuditEvent = (e: AuditEventEntity): AuditEventDto => ({
  id: e.id,
  at: e.at.toISOString(),
  actor: e.actor,
  keyId: e.keyId,
  role: e.role,
  action: e.action,
  targetIds: e.targetIds,
  resultIds: e.resultIds,
  status: e.status,
  errorCode: e.errorCode,
  ip: e.ip,
  userAgent: e.userAgent,
});

/** Writes the audit log (append-only) and pages through a tenant's part of it, newest first. */
@Injectable()
export class AuditService {
  private readonly logger = new Logger(AuditService.name);

  constructor(@InjectRepository(AuditEventEntity) private readonly events: Repository<AuditEventEntity>) {}

  async record(record: AuditRecord): Promise<void> {
    try {
      await this.events.insert(record);
    } catch (err) {
      // The mutation itself happened: its answer must not turn into an error; the log says what was lost.
      this.logger.error(`Could not record ${record.action} by ${record.keyId ?? record.actor}: ${String(err)}`);
    }
  }

  async list(tenantId: string, query: ListAuditEventsQueryDto): Promise<AuditEventPageDto> {
    const limit = query.limit ?? 100;
    const qb = this.events
      .createQueryBuilder('e')
      .where('e.tenant_id = :tenantId', { tenantId })
      // Milliseconds: what a cursor (a JavaScript date) can carry, so a page boundary never skips an event.
      .orderBy(`date_trunc('milliseconds', e.at)`, 'DESC')
      .addOrderBy('e.id', 'DESC')
      .take(limit + 1);
    if (query.keyId) qb.andWhere('e.key_id = :keyId', { keyId: query.keyId });
    if (query.action) qb.andWhere('starts_with(e.action, :action)', { action: query.action });
    if (query.targetId) {
      qb.andWhere(
        new Brackets((w) =>
          w
            .where(
              `jsonb_path_exists(e.target_ids, '$.* ? (@ == $id)', jsonb_build_object('id', CAST(:targetId AS text)))`,
            )
            .orWhere(
              `jsonb_path_exists(e.result_ids, '$.* ? (@ == $id)', jsonb_build_object('id', CAST(:targetId AS text)))`,
            ),
        ),
        { targetId: query.targetId },
      );
    }
    if (query.since) qb.andWhere('e.at >= :since', { since: storableDate(query.since, 'since') });
    if (query.until) qb.andWhere('e.at < :until', { until: storableDate(query.until, 'until') });
    if (query.cursor) {
      const cursor = parseCursor(query.cursor);
      qb.andWhere(`(date_trunc('milliseconds', e.at), e.id) < (:at, :id)`, cursor);
    }
    const rows = await qb.getMany();
    const page = rows.slice(0, limit);
    const last = page.at(-1);
    return {
      events: page.map(toAuditEvent),
      nextCursor: rows.length > limit && last ? makeCursor(last) : null,
    };
  }
}

/** Keyset cursor: the (at, id) of the last event of a page, base64url. */
function makeCursor(e: AuditEventEntity): string {
  return Buffer.from(`${e.at.toISOString()}|${e.id}`).toString('base64url');
}

function parseCursor(cursor: string): { at: Date; id: string } {
  const [at, id] = Buffer.from(cursor, 'base64url').toString().split('|');
  const date = new Date(at ?? '');
  if (!inStorableRange(date) || !UUID.test(id ?? '')) {
    throw new KilnError(ErrorCode.VALIDATION_FAILED, "Invalid cursor: pass the previous page's nextCursor.");
  }
  return { at: date, id };
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Dates PostgreSQL stores as they are (a year 0 or one past 9999 would be its error, a 500, not the client's). */
function inStorableRange(date: Date): boolean {
  const year = date.getUTCFullYear();
  return !Number.isNaN(date.getTime()) && year >= 1 && year <= 9999;
}

function storableDate(value: string, field: string): Date {
  const date = new Date(value);
  if (!inStorableRange(date)) {
    throw new KilnError(ErrorCode.VALIDATION_FAILED, `${field}: a date-time between the years 1 and 9999`);
  }
  return date;
}
