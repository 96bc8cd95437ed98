import { createHmac, randomUUID } from 'node:crypto';
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import { isIP } from 'node:net';
import { Injectable, Logger } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { Client } from '@temporalio/client';
import ipaddr from 'ipaddr.js';
import { DataSource } from 'typeorm';
import { KilnConfig } from '@kiln/config';
import {
  DELIVER_WEBHOOK_WORKFLOW,
  type DeliverWebhookInput,
  deliverWebhookWorkflowId,
  ORCHESTRATOR_TASK_QUEUE,
} from '@kiln/temporal';

/** The events a tenant can subscribe an endpoint to. */
export const WEBHOOK_EVENTS = [
  'compilation.finished',
  'build.failed',
  'channel.moved',
  'rollout.halted',
  'artifact.quarantined',
] as const;
export type WebhookEventType = (typeof WEBHOOK_EVENTS)[number];

/** What a receiver gets (the body of the POST), and what `Kiln-Signature` signs with the timestamp. */
export interface WebhookPayload {
  /** The event: the same in a redelivery (receivers deduplicate on it). */
  id: string;
  type: WebhookEventType;
  createdAt: string;
  tenantId: string;
  data: Record<string, unknown>;
}

/**
 * `Kiln-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" with the endpoint's secret>`. A receiver
 * recomputes it over the raw body, compares in constant time, and refuses a timestamp older than it tolerates
 * (5 minutes is suggested): a captured delivery replayed later fails that check, a changed body the HMAC.
 */
export function webhookSignature(secret: string, timestampS: number, body: string): string {
  const mac = createHmac('sha256', secret).update(`${timestampS}.${body}`).digest('hex');
  return `t=${timestampS},v1=${mac}`;
}

/** Ranges no delivery may reach unless the operator allows them (ipaddr.js's range names). */
const FORBIDDEN_RANGES = new Set([
  'unspecified',
  'broadcast',
  'multicast',
  'linkLocal', // 169.254.0.0/16, fe80::/10: cloud metadata endpoints live here
  'loopback',
  'private',
  'carrierGradeNat',
  'reserved',
  'uniqueLocal', // fc00::/7 (fd00:ec2::254 is AWS's IPv6 metadata endpoint)
  'benchmarking',
  'amt',
  'as112',
  'deprecated',
  'orchid2',
  'droneRemoteIdProtocolEntityTags',
  'teredo',
  '6to4',
  'rfc6145',
  'rfc6052',
  'discard',
]);

export class WebhookDestinationError extends Error {}

/** Who may be called: public addresses, and what the operator lists (`host:port`, or a CIDR range). */
export class WebhookDestinationPolicy {
  private readonly hostPorts = new Set<string>();
  private readonly ranges: [ipaddr.IPv4 | ipaddr.IPv6, number][] = [];

  constructor(allowed: readonly string[]) {
    for (const entry of allowed) {
      if (entry.includes('/')) this.ranges.push(ipaddr.parseCIDR(entry));
      else this.hostPorts.add(entry.toLowerCase());
    }
  }

  /** The URL itself: http(s), no credentials, a literal address only where allowed. Throws WebhookDestinationError. */
  checkUrl(raw: string): URL {
    let url: URL;
    try {
      url = new URL(raw);
    } catch {
      throw new WebhookDestinationError('not a URL');
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') {
      throw new WebhookDestinationError(`${url.protocol} is not http or https`);
    }
    if (url.username || url.password) throw new WebhookDestinationError('credentials in the URL');
    const host = bareHost(url);
    // A name is checked where it matters, against every address it resolves to when a delivery connects.
    if (isIP(host)) this.checkAddress(url, host);
    return url;
  }

  /** One resolved address of the URL's host. */
  checkAddress(url: URL, address: string): void {
    if (this.allowsHost(url)) return;
    const ip = ipaddr.process(address);
    if (this.ranges.some(([net, bits]) => ip.kind() === net.kind() && ip.match(net, bits))) return;
    const range = ip.range();
    if (FORBIDDEN_RANGES.has(range)) {
      throw new WebhookDestinationError(`${address} is a ${range} address (KILN_WEBHOOK_ALLOWED_DESTINATIONS)`);
    }
  }

  private allowsHost(url: URL): boolean {
    return this.hostPorts.has(`${bareHost(url)}:${url.port || (url.protocol === 'https:' ? '443' : '80')}`);
  }
}

function bareHost(url: URL): string {
  return url.hostname.replace(/^\[|\]$/g, '').toLowerCase();
}

/** What one attempt got. */
export interface WebhookAttemptResult {
  ok: boolean;
  statusCode: number | null;
  error: string | null;
  responseBody: string | null;
  /** The destination is not allowed: retrying cannot help. */
  forbidden: boolean;
}

const MAX_RESPONSE_BYTES = 1024;

/**
 * POSTs `body` once. Every address the host resolves to is checked in the connection's own lookup (so a DNS answer
 * cannot change between the check and the connection), a literal address before; redirects are not followed (a 3xx
 * fails the attempt); the answer's first KiB is kept for the deliveries view.
 */
export async function postWebhook(
  policy: WebhookDestinationPolicy,
  rawUrl: string,
  headers: Record<string, string>,
  body: string,
  timeoutMs: number,
): Promise<WebhookAttemptResult> {
  let url: URL;
  try {
    url = policy.checkUrl(rawUrl);
  } catch (err) {
    return { ok: false, statusCode: null, error: String((err as Error).message), responseBody: null, forbidden: true };
  }
  const lookup = (
    hostname: string,
    options: object,
    callback: (err: Error | null, address: string | LookupAddress[], family?: number) => void,
  ): void => {
    dnsLookup(hostname, { all: true }, (err, addresses) => {
      if (err) return callback(err, []);
      try {
        for (const a of addresses) policy.checkAddress(url, a.address);
      } catch (e) {
        return callback(e as Error, []);
      }
      if ((options as { all?: boolean }).all) return callback(null, addresses);
      callback(null, addresses[0].address, addresses[0].family);
    });
  };
  const request = url.protocol === 'https:' ? https.request : http.request;
  return await new Promise<WebhookAttemptResult>((resolve) => {
    const req = request(
      url,
      {
        method: 'POST',
        headers: { ...headers, 'Content-Length': String(Buffer.byteLength(body)) },
        lookup,
        timeout: timeoutMs,
      },
      (res) => {
        const chunks: Buffer[] = [];
        let kept = 0;
        res.on('data', (chunk: Buffer) => {
          if (kept < MAX_RESPONSE_BYTES) {
            chunks.push(chunk.subarray(0, MAX_RESPONSE_BYTES - kept));
            kept += Math.min(chunk.length, MAX_RESPONSE_BYTES - kept);
          }
        });
        res.on('end', () => {
          const status = res.statusCode ?? 0;
          const ok = status >= 200 && status < 300;
          resolve({
            ok,
            statusCode: status,
            error: ok ? null : `the receiver answered HTTP ${status}`,
            responseBody: Buffer.concat(chunks).toString('utf8'),
            forbidden: false,
          });
        });
        res.on('error', (err) =>
          resolve({
            ok: false,
            statusCode: res.statusCode ?? null,
            error: err.message,
            responseBody: null,
            forbidden: false,
          }),
        );
      },
    );
    const deadline = setTimeout(() => req.destroy(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (err) => {
      clearTimeout(deadline);
      resolve({
        ok: false,
        statusCode: null,
        error: err.message,
        responseBody: null,
        forbidden: err instanceof WebhookDestinationError,
      });
    });
    req.on('close', () => clearTimeout(deadline));
    req.end(body);
  });
}

/**
 * Emits events to the tenant's endpoints subscribed to them: one delivery row each (the payload as it will be sent),
 * then one delivery workflow each on the orchestrator queue (retries with backoff, docs/webhooks.md). Emitting never
 * fails the caller: the event happened whatever the webhooks do; a failure is logged.
 */
@Injectable()
export class WebhookEmitter {
  private readonly logger = new Logger(WebhookEmitter.name);

  constructor(
    @InjectDataSource() private readonly dataSource: DataSource,
    private readonly temporal: Client,
    private readonly config: KilnConfig,
  ) {}

  async emit(tenantId: string, type: WebhookEventType, data: Record<string, unknown>): Promise<void> {
    try {
      const endpoints = await this.dataSource.query<{ id: string }[]>(
        `SELECT id FROM webhook_endpoints WHERE tenant_id = $1 AND $2 = ANY(events) ORDER BY id`,
        [tenantId, type],
      );
      if (endpoints.length === 0) return;
      const payload: WebhookPayload = { id: randomUUID(), type, createdAt: new Date().toISOString(), tenantId, data };
      for (const endpoint of endpoints) {
        const [row] = await this.dataSource.query<{ id: string }[]>(
          `INSERT INTO webhook_deliveries (tenant_id, endpoint_id, event_id, event_type, payload)
           VALUES ($1, $2, $3, $4, $5) RETURNING id`,
          [tenantId, endpoint.id, payload.id, type, JSON.stringify(payload)],
        );
        await this.dispatch(row.id);
      }
    } catch (err) {
      this.logger.error(`Could not emit ${type} for tenant ${tenantId}: ${String(err)}`);
    }
  }

  /** Starts (once) the workflow that delivers this row. */
  async dispatch(deliveryId: string): Promise<void> {
    const input: DeliverWebhookInput = {
      deliveryId,
      retryInitialSeconds: this.config.KILN_WEBHOOK_RETRY_INITIAL_S,
      maxAttempts: this.config.KILN_WEBHOOK_MAX_ATTEMPTS,
    };
    await this.temporal.workflow.start(DELIVER_WEBHOOK_WORKFLOW, {
      taskQueue: ORCHESTRATOR_TASK_QUEUE,
      workflowId: deliverWebhookWorkflowId(deliveryId),
      args: [input],
    });
  }
}
