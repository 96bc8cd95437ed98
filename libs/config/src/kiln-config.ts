import os from 'node:os';
import path from 'node:path';
import { plainToInstance, Transform } from 'class-transformer';
import {
  IsBoolean,
  IsIn,
  IsInt,
  IsNotEmpty,
  IsNumber,
  IsOptional,
  IsString,
  IsUrl,
  Max,
  Min,
  validateSync,
} from 'class-validator';
import { KilnError, ErrorCode } from '@kiln/contracts';

/** The admin token local mode accepts; outside local mode the API refuses to start with it. */
export const DEFAULT_ADMIN_TOKEN = 'kiln-local-admin';
/** Shortest admin token the API accepts outside local mode (e.g. `openssl rand -hex 32` gives 64). */
export const MIN_ADMIN_TOKEN_LENGTH = 32;

const toInt = ({ value }: { value: unknown }): unknown =>
  value === undefined || value === '' ? undefined : Number(value);
const toNumber = ({ value }: { value: unknown }): unknown =>
  value === undefined || value === '' ? undefined : Number(value);
const toBool = ({ value }: { value: unknown }): unknown =>
  value === undefined || value === '' ? undefined : value === true || value === 'true' || value === '1';
const toList = ({ value }: { value: unknown }): unknown =>
  typeof value === 'string'
    ? value
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean)
    : value;

/**
 * The one place Kiln reads its environment. Every field has a local default, so `npm start` works with
 * zero configuration; .env.example documents each variable. Apps get it through Nest's ConfigModule
 * (`validate: validateKilnConfig`) and inject it as `KilnConfig`.
 */
export class KilnConfig {
  @IsString() KILN_HOME = '.kiln';

  @IsString() @IsNotEmpty() DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/kiln';
  /** Local default: apply pending migrations at start. Production runs them as a release step. */
  @Transform(toBool) @IsBoolean() KILN_DB_MIGRATE_ON_START = true;

  @IsString() TEMPORAL_ADDRESS = '127.0.0.1:7233';
  /**
   * TLS to Temporal (Temporal Cloud, or a self-hosted server behind TLS): the client certificate and key of mTLS
   * (PEM files, both or neither), a CA to trust beyond the system's, the name to check the server's certificate
   * against, or an API key (implies TLS). All unset: plain TCP (the local dev server).
   */
  @IsOptional() @IsString() @IsNotEmpty() TEMPORAL_TLS_CERT_FILE?: string = undefined;
  @IsOptional() @IsString() @IsNotEmpty() TEMPORAL_TLS_KEY_FILE?: string = undefined;
  @IsOptional() @IsString() @IsNotEmpty() TEMPORAL_TLS_CA_FILE?: string = undefined;
  @IsOptional() @IsString() @IsNotEmpty() TEMPORAL_TLS_SERVER_NAME?: string = undefined;
  @IsOptional() @IsString() @IsNotEmpty() TEMPORAL_API_KEY?: string = undefined;
  @IsString() TEMPORAL_NAMESPACE = 'default';

  @IsUrl({ require_tld: false, require_protocol: true }) S3_ENDPOINT = 'http://127.0.0.1:8333';
  @IsString() S3_REGION = 'us-east-1';
  @IsString() S3_BUCKET = 'kiln';
  @IsString() S3_ACCESS_KEY_ID = 'kiln';
  @IsString() S3_SECRET_ACCESS_KEY = 'kiln-local-secret';
  @Transform(toBool) @IsBoolean() S3_FORCE_PATH_STYLE = true;
  /** Lifetime of presigned download URLs. */
  @Transform(toInt) @IsInt() @Min(30) @Max(7 * 24 * 3600) KILN_PRESIGN_TTL_S = 900;

  @Transform(toInt) @IsInt() @Min(1) @Max(65535) KILN_API_PORT = 3000;
  /**
   * The built dashboard the API serves at `/` (scripts/setup.sh builds it). A setting rather than a path derived
   * from the source file: the API runs compiled from dist/, where a path relative to its own file points nowhere.
   */
  @IsString() @IsNotEmpty() KILN_DASHBOARD_DIR = 'apps/web/dist';
  /**
   * Local mode (scripts/stack.sh and the tests turn it on): the API accepts the well-known default admin token
   * and listens on 127.0.0.1 unless KILN_API_HOST says otherwise. Off, the API refuses to start with the default
   * or a short admin token.
   */
  @Transform(toBool) @IsBoolean() KILN_LOCAL_MODE = false;
  /** Interface the API listens on (default: 127.0.0.1 in local mode, else 0.0.0.0). */
  @IsOptional() @IsString() @IsNotEmpty() KILN_API_HOST?: string = undefined;
  /**
   * Log lines: `json` (one JSON object per line with service, request, tenant, compilation, build and trace ids: for a
   * log collector) or `pretty` (the same, human-readable). Default: pretty in local mode, json outside it.
   */
  @IsOptional() @IsIn(['json', 'pretty']) KILN_LOG_FORMAT?: 'json' | 'pretty' = undefined;
  @IsIn(['trace', 'debug', 'info', 'warn', 'error', 'fatal']) KILN_LOG_LEVEL = 'info';
  @IsString() @IsNotEmpty() KILN_ADMIN_TOKEN = DEFAULT_ADMIN_TOKEN;

  /**
   * Prometheus `/metrics` of the API, on its own port (never the public API port, so a scrape endpoint is not
   * exposed to API clients); 0 turns it off. Bound to KILN_METRICS_HOST.
   */
  @Transform(toInt) @IsInt() @Min(0) @Max(65535) KILN_API_METRICS_PORT = 9464;
  /**
   * The worker's Prometheus /metrics port (build and orchestrator metrics, and the Temporal SDK's own): 0 turns it
   * off. Bound to KILN_METRICS_HOST. Each worker process on a host needs a port of its own.
   */
  @Transform(toInt) @IsInt() @Min(0) @Max(65535) KILN_WORKER_METRICS_PORT = 9465;
  /** Interface the `/metrics` listeners bind to: loopback unless a scraper elsewhere needs it. */
  @IsString() @IsNotEmpty() KILN_METRICS_HOST = '127.0.0.1';

  /**
   * Traces (OpenTelemetry, OTLP over HTTP): off unless one of these is set, the standard OpenTelemetry names. The
   * base endpoint of an OTLP/HTTP receiver (a collector's `http://host:4318`; traces go to `<base>/v1/traces`) ...
   */
  @IsOptional() @IsUrl({ require_tld: false, require_protocol: true }) OTEL_EXPORTER_OTLP_ENDPOINT?: string = undefined;
  /** ... or the full URL traces are posted to (wins over the base endpoint). */
  @IsOptional() @IsUrl({ require_tld: false, require_protocol: true }) OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?: string =
    undefined;
  /** Milliseconds finished spans wait to be sent in one batch (the OpenTelemetry default). */
  @Transform(toInt) @IsInt() @Min(1) @Max(600_000) OTEL_BSP_SCHEDULE_DELAY = 5000;

  /** Requests one API key or device token may make per minute (all replicas together); 429 + Retry-After beyond. */
  @Transform(toInt) @IsInt() @Min(1) KILN_RATE_LIMIT_PER_MINUTE = 1200;
  /** Quotas of a tenant unless set for it (PATCH /v1/admin/tenants/:id/quotas): builds queued or running at once, */
  @Transform(toInt) @IsInt() @Min(1) KILN_QUOTA_CONCURRENT_BUILDS = 50;
  /** ... uploads started per hour (direct and multipart), */
  @Transform(toInt) @IsInt() @Min(1) KILN_QUOTA_UPLOADS_PER_HOUR = 100;
  /** ... and bytes stored (model versions, artifacts, unfinished multipart uploads). */
  @Transform(toInt) @IsInt() @Min(1) KILN_QUOTA_STORED_BYTES = 200 * 1024 ** 3;
  /** Largest .pt2 the API accepts. */
  @Transform(toInt) @IsInt() @Min(1) KILN_MAX_UPLOAD_BYTES = 16 * 1024 ** 3;
  /** Presigned multipart uploads: how long an unfinished upload may take before the sweep aborts it. */
  @Transform(toInt) @IsInt() @Min(60) KILN_UPLOAD_TTL_S = 24 * 3600;
  /** Lifetime of a presigned UploadPart URL (clients ask for fresh ones as they go). */
  @Transform(toInt) @IsInt() @Min(30) @Max(7 * 24 * 3600) KILN_UPLOAD_PART_URL_TTL_S = 900;
  /** Part size when the client does not ask for one (grown so that no upload needs more than 10 000 parts). */
  @Transform(toInt) @IsInt() @Min(5 * 1024 ** 2) @Max(5 * 1024 ** 3) KILN_UPLOAD_PART_SIZE_BYTES = 32 * 1024 ** 2;
  /**
   * The interval of the `kiln-sweep-uploads` Temporal Schedule (orchestrator) that aborts expired multipart uploads
   * (S3 keeps their parts, and bills them, until then).
   */
  @Transform(toInt) @IsInt() @Min(1) KILN_UPLOAD_SWEEP_INTERVAL_S = 300;
  /**
   * The interval of the `kiln-gc-blobs` Temporal Schedule (created by the orchestrator worker at start) that collects
   * garbage: deletes the S3 objects of deleted records and sweeps content-addressed blobs
   * nothing references any more whose pin lapsed (a delete also collects its tenant at once).
   */
  @Transform(toInt) @IsInt() @Min(1) KILN_GC_INTERVAL_S = 600;
  /** How often the orchestrator's Temporal Schedule applies every tenant's retention policy (one pass per interval). */
  @Transform(toInt) @IsInt() @Min(60) KILN_RETENTION_INTERVAL_S = 86_400;
  /**
   * The interval of the `kiln-reconcile-compilations` Temporal Schedule: starts the workflows of compilations whose
   * start failed when they were created (Temporal down, an API replica killed between the insert and the start).
   */
  @Transform(toInt) @IsInt() @Min(1) KILN_RECONCILE_INTERVAL_S = 15;
  /** The interval of the `kiln-telemetry-partitions` Temporal Schedule: drops device-report months past retention. */
  @Transform(toInt) @IsInt() @Min(60) KILN_TELEMETRY_SWEEP_INTERVAL_S = 3600;
  /** The interval of the `kiln-queue-backlog` Temporal Schedule: measures and publishes each build queue's backlog. */
  @Transform(toInt) @IsInt() @Min(10) KILN_BACKLOG_INTERVAL_S = 60;
  /**
   * Where set (the AWS deployment sets `Kiln`), each backlog measurement also goes to CloudWatch as BuildQueueBacklog
   * (dimension Queue), which scales the build pools (infra/terraform/autoscaling.tf). Unset: /metrics only.
   */
  @IsOptional() @IsString() @IsNotEmpty() KILN_CLOUDWATCH_NAMESPACE?: string = undefined;

  /**
   * Webhook deliveries go only to public addresses: loopback, private, link-local (cloud metadata), CGNAT, unique-local
   * and multicast destinations are refused, unless listed here as `host:port` (as the URL names it) or a CIDR range.
   */
  @Transform(toList) @IsString({ each: true }) KILN_WEBHOOK_ALLOWED_DESTINATIONS: string[] = [];
  /** How long one delivery attempt may take (connect, send, answer). */
  @Transform(toInt) @IsInt() @Min(100) @Max(120_000) KILN_WEBHOOK_TIMEOUT_MS = 10_000;
  /** Attempts per delivery (the first one included); the waits between them double from KILN_WEBHOOK_RETRY_INITIAL_S. */
  @Transform(toInt) @IsInt() @Min(1) @Max(30) KILN_WEBHOOK_MAX_ATTEMPTS = 8;
  @Transform(toInt) @IsInt() @Min(1) @Max(3600) KILN_WEBHOOK_RETRY_INITIAL_S = 10;

  /**
   * ed25519 key (PKCS#8 PEM) the orchestrator signs artifact and portable manifests with. Only the orchestrator role
   * of the worker reads it: build hosts and the API never do.
   */
  @IsString() KILN_SIGNING_KEY_FILE = '.kiln/keys/artifact-signing-key.pem';
  /** Its public half (SPKI PEM): all the API holds; it publishes it at GET /v1/signing-keys. */
  @IsString() KILN_SIGNING_PUBLIC_KEY_FILE = '.kiln/keys/artifact-signing-key.pub.pem';
  /** Local default: create the key pair on first use. Production provisions both files and sets this to false. */
  @Transform(toBool) @IsBoolean() KILN_SIGNING_KEY_CREATE = true;

  @IsString() KILN_PYTHON = '.kiln/venv/bin/python';
  @Transform(toInt) @IsInt() @Min(10) KILN_BUILD_TIMEOUT_S = 1800;
  @Transform(toInt) @IsInt() @Min(256) KILN_BUILD_MEMORY_MB = 8192;
  /** How long a build's target may have no worker at all (no poller, no build running) before NO_WORKER. */
  @Transform(toInt) @IsInt() @Min(5) KILN_BUILD_WAIT_FOR_WORKER_S = 1800;
  @Transform(toList) @IsOptional() @IsString({ each: true }) KILN_WORKER_TARGETS: string[] = [];
  /** What this worker process does: `orchestrator` (workflows + bookkeeping), `build` (compiles), or both. */
  @Transform(toList) @IsIn(['orchestrator', 'build'], { each: true }) KILN_WORKER_ROLES: string[] = [
    'orchestrator',
    'build',
  ];
  /**
   * Make this host act as a CPU of at most this x86-64 level (1–4): the build worker's probe drops the CPU flags
   * of higher levels, so it serves only the targets such a CPU can run. For testing on any machine what an older
   * host does (`npm test` passes on a v2 host: KILN_X86_LEVEL_CAP=2 shows it on a newer one). Empty: no cap.
   * The device runtime (kiln-device) honours the same variable.
   */
  @Transform(toInt) @IsOptional() @IsInt() @Min(1) @Max(4) KILN_X86_LEVEL_CAP: 1 | 2 | 3 | 4 | null = null;
  /** Builds one worker runs at once per target queue. */
  @Transform(toInt) @IsInt() @Min(1) KILN_WORKER_BUILD_CONCURRENCY = 1;
  /**
   * This worker's name: its Temporal worker identity (the Temporal UI shows it on every activity it ran) and
   * `builds.worker_id` of each build it runs, so an operator sees which host built what. Empty: `<pid>@<hostname>`
   * (Temporal's own default), unique per process on a host and per host in a fleet.
   */
  @IsString() KILN_WORKER_ID = '';
  /**
   * The build sandbox: `enforce` (a build worker serves no build queue unless its self-test finds every wall in
   * place) or `insecure-local` (builds run with whatever walls this host has; every build log line and the
   * manifest say so, and the resolver never hands such artifacts to devices unless asked). docs/security.md.
   */
  @IsIn(['enforce', 'insecure-local']) KILN_SANDBOX: 'enforce' | 'insecure-local' = 'enforce';
  /** The bubblewrap binary jobs run in (default: `bwrap` on the PATH). */
  @IsString() KILN_SANDBOX_BWRAP = '';
  /** Most processes and threads one build may have at once (cgroup pids limit). */
  @Transform(toInt) @IsInt() @Min(64) KILN_BUILD_PIDS_LIMIT = 4096;

  // Fleet evidence and staged rollouts (docs/fleet.md).
  /**
   * Raw device reports are kept this long (whole monthly partitions are dropped once past it); rollups stay. At least
   * 40 days: a month's partition must outlive the 7 days a report may arrive late.
   */
  @Transform(toInt) @IsInt() @Min(40) KILN_TELEMETRY_RETENTION_DAYS = 90;
  /** Device-measured speedups rank an artifact for a class once this many runs of the class timed it. */
  @Transform(toInt) @IsInt() @Min(1) KILN_EVIDENCE_MIN_SAMPLES = 5;
  /** An artifact is quarantined for a device class at this many failures on the class ... */
  @Transform(toInt) @IsInt() @Min(1) KILN_QUARANTINE_MIN_FAILURES = 3;
  /** ... when they are at least this share of the class's runs of it. */
  @Transform(toNumber) @IsNumber() @Min(0) @Max(1) KILN_QUARANTINE_FAILURE_RATE = 0.25;
  /** Rollout stages (percent of devices, increasing, ending at 100) when a rollout does not give its own. */
  @Transform(toList) @IsString({ each: true }) KILN_ROLLOUT_STAGES: string[] = ['10', '50', '100'];
  /** Rollout gate defaults, each overridable per rollout: how long a stage holds before promotion ... */
  @Transform(toInt) @IsInt() @Min(1) KILN_ROLLOUT_HOLD_S = 1800;
  /** ... how often its gates are evaluated ... */
  @Transform(toInt) @IsInt() @Min(1) KILN_ROLLOUT_CHECK_INTERVAL_S = 60;
  /** ... the error rate (failures / reports of the new version, per class) that breaks the error gate ... */
  @Transform(toNumber) @IsNumber() @Min(0) @Max(1) KILN_ROLLOUT_MAX_ERROR_RATE = 0.05;
  /** ... the reports of a class a gate needs before it judges the class ... */
  @Transform(toInt) @IsInt() @Min(1) KILN_ROLLOUT_MIN_REPORTS = 20;
  /** ... how much slower than the previous version (same class, same stage) breaks the latency gate ... */
  @Transform(toNumber) @IsNumber() @Min(1) KILN_ROLLOUT_MAX_LATENCY_RATIO = 1.25;
  /** ... and the reports of the new version a stage needs before it is promoted (0: time alone promotes). */
  @Transform(toInt) @IsInt() @Min(0) KILN_ROLLOUT_MIN_REPORTS_TO_PROMOTE = 20;

  /** Absolute path of a path setting, relative to the process's working directory (the repo root locally). */
  resolvePath(p: string): string {
    return path.resolve(p);
  }
  /** Where the API listens: KILN_API_HOST, else loopback in local mode and every interface outside it. */
  get apiHost(): string {
    return this.KILN_API_HOST ?? (this.KILN_LOCAL_MODE ? '127.0.0.1' : '0.0.0.0');
  }
  get logFormat(): 'json' | 'pretty' {
    return this.KILN_LOG_FORMAT ?? (this.KILN_LOCAL_MODE ? 'pretty' : 'json');
  }
  get workDir(): string {
    return path.resolve(this.KILN_HOME, 'work');
  }
  get workerId(): string {
    return this.KILN_WORKER_ID || `${process.pid}@${os.hostname()}`;
  }
}

export function validateKilnConfig(env: Record<string, unknown>): KilnConfig {
  const known = Object.keys(new KilnConfig());
  const picked = Object.fromEntries(Object.entries(env).filter(([k, v]) => known.includes(k) && v !== ''));
  const config = plainToInstance(KilnConfig, picked, { exposeDefaultValues: true });
  const errors = validateSync(config, { skipMissingProperties: false });
  if (errors.length > 0) {
    const details = errors.map((e) => `${e.property}: ${Object.values(e.constraints ?? {}).join(', ')}`);
    throw new KilnError(ErrorCode.VALIDATION_FAILED, `Invalid configuration: ${details.join('; ')}`, { details });
  }
  return config;
}

/** For scripts and tests outside Nest: the validated config of this process's environment. */
export function loadKilnConfig(env: NodeJS.ProcessEnv = process.env): KilnConfig {
  return validateKilnConfig(env);
}
