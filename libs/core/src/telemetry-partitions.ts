import { Injectable, Logger } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { monthOf, monthRange, uuidLowerBound } from './uuid7.js';

const PARENT = 'telemetry_reports';
const PARTITION = /^telemetry_reports_y(\d{4})m(\d{2})$/;

/**
 * The monthly partitions of telemetry_reports (range of UUIDv7 report ids, see uuid7.ts). There is no default
 * partition: a row could then land in it and block creating its month's partition later. Instead the ingest path
 * makes sure the partition of every month it is about to write exists (once per month per process: the check is
 * remembered), and the `kiln-telemetry-partitions` Temporal Schedule (orchestrator) drops months past the retention
 * whole (no row-by-row DELETE on a big table).
 */
@Injectable()
export class TelemetryPartitions {
  private readonly logger = new Logger(TelemetryPartitions.name);
  private readonly ensured = new Set<string>();

  constructor(@InjectDataSource() private readonly dataSource: DataSource) {}

  static partitionName(month: string): string {
    const [y, m] = month.split('-');
    return `${PARENT}_y${y}m${m}`;
  }

  /** Creates the partitions of these months ('YYYY-MM') that do not exist yet. */
  async ensure(months: Iterable<string>): Promise<void> {
    for (const month of months) {
      if (this.ensured.has(month)) continue;
      const [from, to] = monthRange(month);
      await this.dataSource.transaction(async (tx) => {
        // API replicas may race for the same month: one creates it, the others find it.
        await tx.query(`SELECT pg_advisory_xact_lock(hashtext('kiln.telemetry_partitions'))`);
        await tx.query(
          `CREATE TABLE IF NOT EXISTS "${TelemetryPartitions.partitionName(month)}" PARTITION OF "${PARENT}" ` +
            `FOR VALUES FROM ('${uuidLowerBound(from)}') TO ('${uuidLowerBound(to)}')`,
        );
      });
      this.ensured.add(month);
    }
  }

  /** Drops the months that ended more than `retentionDays` ago; returns their names. */
  async dropExpired(retentionDays: number, now = Date.now()): Promise<string[]> {
    const rows = await this.dataSource.query<{ name: string }[]>(
      `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = $1`,
      [PARENT],
    );
    const dropped: string[] = [];
    for (const { name } of rows) {
      const m = PARTITION.exec(name);
      if (!m) continue;
      const month = `${m[1]}-${m[2]}`;
      const [, end] = monthRange(month);
      if (end >= now - retentionDays * 86_400_000) continue;
      await this.dataSource.query(`DROP TABLE IF EXISTS "${name}"`);
      this.ensured.delete(month);
      dropped.push(name);
      this.logger.log(`Dropped ${name}: device reports older than ${retentionDays} days`);
    }
    return dropped;
  }

  /** The month of a report id's timestamp. */
  static monthOfReport(ms: number): string {
    return monthOf(ms);
  }
}
