#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Runs Kiln's local stack as plain background processes (no Docker): PostgreSQL, the Temporal dev
# server, SeaweedFS as S3, and optionally the API and the worker. Each service has a readiness
# check, a pid file in $KILN_HOME/run, a log in $KILN_HOME/logs and its state in $KILN_HOME/data.
# Configuration comes from scripts/lib/env.sh (environment > .env > the defaults of .env.example).
#
# Usage: scripts/stack.sh start   [all | infra | SERVICE...]   (default: infra)
#        scripts/stack.sh stop    [all | SERVICE...]           (default: all of ours)
#        scripts/stack.sh restart [all | infra | SERVICE...]   (default: infra + apps now running)
#        scripts/stack.sh status  [SERVICE...]                 (exit 3 when infra / a named one is down)
# Services, in start order: postgres temporal s3 (= infra), api worker.
set -euo pipefail

# shellcheck source=lib/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/env.sh"
# shellcheck source=lib/common.sh
source "$KILN_ROOT/scripts/lib/common.sh"

readonly INFRA=(postgres temporal s3)
readonly APPS=(api worker)
readonly ALL=(postgres temporal s3 api worker)
readonly STOP_GRACE_S=20

usage() {
  sed -n '3,12p' "$0" | sed 's/^# \{0,1\}//'
}

pid_file() { printf '%s/%s.pid' "$KILN_RUN_DIR" "$1"; }
log_file() { printf '%s/%s.log' "$KILN_LOG_DIR" "$1"; }

# Last lines a service wrote since it was started (so an old run's errors don't mislead).
log_tail() {
  local svc=$1 log offset=0 offset_file
  log=$(log_file "$svc")
  offset_file="$KILN_RUN_DIR/$svc.logoffset"
  [[ -f $offset_file ]] && read -r offset <"$offset_file"
  [[ -f $log ]] || return 0
  say "--- last lines of $(show_path "$log") ---" >&2
  tail -c +"$((offset + 1))" "$log" | tail -n 30 >&2
  say "---" >&2
}

# Fails with a clear message when a port is taken by a process that is not this service.
require_free_port() {
  local port=$1 how=$2 owner
  owner=$(port_owner "$port")
  [[ -z $owner ]] && return 0
  die "port $port is already in use by $owner, which is not Kiln's ${CURRENT_SVC}.
       Stop that process, or give Kiln another port: $how
       (set it in the environment or in $(show_path "$KILN_ROOT/.env"))."
}

# Starts "$@" in its own session (so Ctrl-C in this terminal or a closing SSH session leaves it
# alone and stop_pid can signal its whole process group), appending to its log. The process writes
# its own pid before exec'ing, which stays right whether or not setsid had to fork.
launch() {
  local svc=$1 cwd=$2 log pidf i pid=''
  shift 2
  log=$(log_file "$svc")
  pidf=$(pid_file "$svc")
  rm -f "$pidf"
  printf '\n=== %s: stack.sh starting %s ===\n' "$(date '+%F %T')" "$svc" >>"$log"
  stat -c %s "$log" >"$KILN_RUN_DIR/$svc.logoffset"
  # 9>&- : the service must not inherit the lock (see take_lock), or it would hold it forever.
  # shellcheck disable=SC2016 # $$ and $@ are for the inner bash
  (cd "$cwd" && exec setsid bash -c 'echo $$ >"$0"; exec "$@"' "$pidf" "$@" >>"$log" 2>&1 </dev/null 9>&-) &
  for ((i = 0; i < 50; i++)); do
    pid=$(read_pid "$pidf") && break
    sleep 0.1
  done
  [[ -n $pid ]] || die "$svc: the process did not start (no pid file)"
  STARTED_PID=$pid
}

# Polls probe (a function name) every half second until it succeeds. Fails when the process dies
# or after KILN_STACK_TIMEOUT_S, printing the log; a process we started is then stopped again, so
# the next `start` begins clean.
wait_ready() {
  local svc=$1 pid=$2 probe=$3 what=$4 started_here=${5:-yes} deadline=$((SECONDS + KILN_STACK_TIMEOUT_S))
  while :; do
    if "$probe"; then return 0; fi
    if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then
      err "$svc exited while starting (waited for: $what)"
      log_tail "$svc"
      rm -f "$(pid_file "$svc")"
      return 1
    fi
    if ((SECONDS >= deadline)); then
      err "$svc was not ready after ${KILN_STACK_TIMEOUT_S}s (waited for: $what; raise KILN_STACK_TIMEOUT_S if this machine is just slow)"
      log_tail "$svc"
      if [[ -n $pid && $started_here == yes ]]; then
        stop_pid "$pid" "$svc" "$STOP_GRACE_S" || true
        rm -f "$(pid_file "$svc")"
      elif [[ -n $pid ]]; then
        err "$svc (pid $pid) was already running and is left as it is: scripts/stack.sh restart $svc"
      fi
      return 1
    fi
    sleep 0.5
  done
}

# The pid of our running instance of svc (checked against its command line), or nothing. A pid
# file whose process is gone, or now belongs to something else, is stale and removed.
our_pid() {
  local svc=$1 pidf pid
  pidf=$(pid_file "$svc")
  pid=$(read_pid "$pidf") || {
    rm -f "$pidf"
    return 0
  }
  if pid_matches "$pid" "$(svc_signature "$svc")"; then
    printf '%s' "$pid"
  else
    note "$svc: removing stale pid file (pid $pid is not running it)" >&2
    rm -f "$pidf"
  fi
}

# A command-line fragment unique to our instance of each service (absolute paths under this
# checkout's KILN_HOME, so another checkout's stack is never taken for ours).
svc_signature() {
  case $1 in
    postgres) printf '%s' "$PG_DATA" ;;
    temporal) printf '%s' "--db-filename $TEMPORAL_DB" ;;
    s3) printf '%s' "-dir=$S3_DIR" ;;
    api | worker) app_dist_entry "$1" ;;
  esac
}

# A running instance started with other settings than the current environment's (another port)
# would never pass the readiness check: say so instead of waiting.
require_same_config() {
  local svc=$1 pid=$2 fragment=$3 setting=$4
  pid_matches "$pid" "$fragment" && return 0
  die "$svc is running (pid $pid) but not with $setting from the current environment.
       Restart it to apply the change: scripts/stack.sh restart $svc"
}

need_venv_bin() {
  [[ -x $1 ]] || die "$CURRENT_SVC: $(show_path "$1") is missing: run scripts/setup.sh first."
}

# === postgres ====================================================================================
# The machine's PostgreSQL is used when one answers on DATABASE_URL's host:port (and never
# stopped); otherwise a cluster is created in $KILN_HOME/data/postgres and run on that port.

pg_init_vars() {
  parse_pg_url "$DATABASE_URL" ||
    die "DATABASE_URL='$DATABASE_URL' is not a postgres://[user[:password]@]host[:port]/database URL"
  PG_DATA="$KILN_DATA_DIR/postgres"
  PG_LISTEN=${PGU_HOST#[}
  PG_LISTEN=${PG_LISTEN%]}
}

# Another server's answer: 0 = accepting, 1 = rejecting (e.g. still starting): either way a
# PostgreSQL owns the port. -U/-d keep the probe from logging "role root does not exist".
pg_answers() {
  local rc=0
  pg_isready -q -t 2 -h "$PG_LISTEN" -p "$PGU_PORT" -U "$PGU_USER" -d postgres || rc=$?
  ((rc == 0 || rc == 1))
}
pg_accepting() { pg_isready -q -t 2 -h "$PG_LISTEN" -p "$PGU_PORT" -U "$PGU_USER" -d postgres; }

# initdb and the server refuse to run as root; as root they run as the distribution's `postgres`
# user (it comes with the packages that provide initdb), elsewhere as the current user.
pg_as_owner() {
  if ((EUID == 0)); then
    (cd / && runuser -u "$PG_OS_USER" -- "$@")
  else
    "$@"
  fi
}

pg_find_bins() {
  local dir='' candidate
  if command -v pg_config >/dev/null 2>&1; then dir=$(pg_config --bindir 2>/dev/null || true); fi
  if [[ ! -x $dir/initdb ]]; then
    dir=''
    # Debian keeps server binaries off PATH, one folder per major version: take the newest.
    for candidate in $(compgen -G '/usr/lib/postgresql/*/bin' | sort -V); do
      [[ -x $candidate/initdb ]] && dir=$candidate
    done
  fi
  if [[ -z $dir ]] && command -v initdb >/dev/null 2>&1; then dir=$(dirname "$(command -v initdb)"); fi
  [[ -n $dir && -x $dir/pg_ctl ]] ||
    die "postgres: nothing answers on $PGU_HOST:$PGU_PORT and initdb/pg_ctl were not found to create a local cluster.
       Install PostgreSQL (Debian: apt-get install postgresql) or point DATABASE_URL at a running server."
  PG_BIN=$dir
  PG_OS_USER=$(id -un)
  if ((EUID == 0)); then
    PG_OS_USER=postgres
    id -u "$PG_OS_USER" >/dev/null 2>&1 ||
      die "postgres: initdb refuses to run as root and there is no 'postgres' user to run it as (useradd --system postgres), or run stack.sh as a normal user."
  fi
}

pg_our_pid() {
  local pid=''
  [[ -f $PG_DATA/postmaster.pid ]] && read -r pid <"$PG_DATA/postmaster.pid"
  if [[ $pid =~ ^[0-9]+$ ]] && pid_matches "$pid" "$PG_DATA"; then
    printf '%s' "$pid"
    printf '%s\n' "$pid" >"$(pid_file postgres)"
  else
    rm -f "$(pid_file postgres)"
  fi
}

pg_create_cluster() {
  local log
  log=$(log_file postgres)
  note "postgres: creating a cluster in $(show_path "$PG_DATA") (superuser '$PGU_USER', trust auth)"
  mkdir -p "$PG_DATA"
  chmod 700 "$PG_DATA"
  if ((EUID == 0)); then
    chown "$PG_OS_USER:" "$PG_DATA" "$log"
    runuser -u "$PG_OS_USER" -- test -w "$PG_DATA" ||
      die "postgres: user '$PG_OS_USER' cannot reach $PG_DATA (a parent folder is not searchable by it); set KILN_HOME to a folder it can reach."
  fi
  pg_as_owner "$PG_BIN/initdb" -D "$PG_DATA" -U "$PGU_USER" --auth=trust -E UTF8 --no-locale >>"$log" 2>&1 || {
    err "postgres: initdb failed"
    log_tail postgres
    exit 1
  }
  # TCP only: a unix socket would need a folder the server user can write (and /var/run/postgresql
  # may not exist on a machine without the PostgreSQL service).
  printf '\n# Kiln local cluster (scripts/stack.sh)\nunix_socket_directories = '"''"'\n' >>"$PG_DATA/postgresql.conf"
}

pg_ensure_database() {
  local admin_url="$PGU_PREFIX/postgres$PGU_QUERY" exists
  command -v psql >/dev/null 2>&1 || {
    warn "postgres: psql not found; cannot check that database '$PGU_DB' exists"
    return 0
  }
  # psql variables (:'db' / :"db") quote the name safely; they work on stdin, not with -c.
  exists=$(psql -X -q -tA -v ON_ERROR_STOP=1 -v db="$PGU_DB" "$admin_url" <<<"SELECT 1 FROM pg_database WHERE datname = :'db';") ||
    die "postgres: cannot query $PGU_HOST:$PGU_PORT as '$PGU_USER' (see above)"
  if [[ $exists != 1 ]]; then
    psql -X -q -v ON_ERROR_STOP=1 -v db="$PGU_DB" "$admin_url" <<<'CREATE DATABASE :"db";' >/dev/null ||
      die "postgres: could not create database '$PGU_DB'"
    ok "postgres: created database '$PGU_DB'"
  fi
}

start_postgres() {
  local pid log
  pid=$(pg_our_pid)
  if [[ -n $pid ]]; then
    require_same_config postgres "$pid" "-p $PGU_PORT " "port $PGU_PORT (DATABASE_URL)"
    wait_ready postgres "$pid" pg_accepting "pg_isready on $PGU_HOST:$PGU_PORT" no || exit 1
    pg_ensure_database
    ok "postgres: already running (ours, pid $pid, port $PGU_PORT)"
    return
  fi
  if pg_answers; then
    wait_ready postgres '' pg_accepting "pg_isready on $PGU_HOST:$PGU_PORT" || exit 1
    pg_ensure_database
    ok "postgres: using the PostgreSQL already answering on $PGU_HOST:$PGU_PORT (not managed by stack.sh), database '$PGU_DB'"
    return
  fi
  is_local_host "$PGU_HOST" ||
    die "postgres: DATABASE_URL points at $PGU_HOST:$PGU_PORT, which does not answer; stack.sh only starts PostgreSQL on 127.0.0.1/localhost."
  require_free_port "$PGU_PORT" "DATABASE_URL=postgres://$PGU_USER@$PGU_HOST:<port>/$PGU_DB"
  pg_find_bins
  log=$(log_file postgres)
  touch "$log"
  if ((EUID == 0)); then chown "$PG_OS_USER:" "$log"; fi
  [[ -f $PG_DATA/PG_VERSION ]] || pg_create_cluster
  printf '\n=== %s: stack.sh starting postgres ===\n' "$(date '+%F %T')" >>"$log"
  stat -c %s "$log" >"$KILN_RUN_DIR/postgres.logoffset"
  # Port and address come from DATABASE_URL at every start, so changing the URL is enough.
  pg_as_owner "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$log" -w -t "$KILN_STACK_TIMEOUT_S" \
    -o "-p $PGU_PORT -c listen_addresses=$PG_LISTEN" start >/dev/null 9>&- || {
    err "postgres: pg_ctl start failed"
    log_tail postgres
    exit 1
  }
  pid=$(pg_our_pid)
  wait_ready postgres "$pid" pg_accepting "pg_isready on $PGU_HOST:$PGU_PORT" || exit 1
  pg_ensure_database
  ok "postgres: started (pid $pid, port $PGU_PORT, data $(show_path "$PG_DATA"))"
}

stop_postgres() {
  local pid
  pid=$(pg_our_pid)
  if [[ -z $pid ]]; then
    if pg_answers; then
      note "postgres: not ours (the PostgreSQL on $PGU_HOST:$PGU_PORT is not managed by stack.sh); left running"
    else
      note "postgres: not running"
    fi
    return
  fi
  pg_find_bins
  # "fast" rolls back open transactions and disconnects clients, then shuts down cleanly.
  if ! pg_as_owner "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t "$STOP_GRACE_S" stop >/dev/null; then
    warn "postgres: pg_ctl stop failed; signalling pid $pid"
    stop_pid "$pid" postgres "$STOP_GRACE_S" || die "postgres: pid $pid does not stop"
  fi
  rm -f "$(pid_file postgres)"
  ok "postgres: stopped (pid $pid)"
}

status_postgres() {
  local pid
  pid=$(pg_our_pid)
  if [[ -n $pid ]]; then
    if pg_accepting; then STATUS_STATE=running; else STATUS_STATE='running (not accepting)'; fi
    STATUS_PID=$pid
    STATUS_LOG=$(show_path "$(log_file postgres)")
  elif pg_answers; then
    STATUS_STATE='external (not managed)'
    STATUS_PID=$(port_owner "$PGU_PORT" | sed -n 's/.*(pid \([0-9]*\))/\1/p')
  fi
  STATUS_PORTS="$PGU_PORT db:$PGU_DB"
  # Ours may still run on the port an earlier DATABASE_URL named: show the real one.
  if [[ -n $pid ]]; then STATUS_PORTS="$(sed -n 4p "$PG_DATA/postmaster.pid") db:$PGU_DB"; fi
}

# === temporal ====================================================================================
temporal_init_vars() {
  parse_host_port "$TEMPORAL_ADDRESS" || die "TEMPORAL_ADDRESS='$TEMPORAL_ADDRESS' is not host:port"
  TEMPORAL_HOST=$HP_HOST
  TEMPORAL_PORT=$HP_PORT
  TEMPORAL_BIN="$KILN_VENV/bin/temporal"
  TEMPORAL_DB="$KILN_DATA_DIR/temporal.db"
}

temporal_ready() {
  local health
  health=$("$TEMPORAL_BIN" operator cluster health --address "$TEMPORAL_HOST:$TEMPORAL_PORT" --command-timeout 3s 2>/dev/null) || return 1
  [[ $health == *SERVING* ]] || return 1
  # The workers and the API use TEMPORAL_NAMESPACE: it must exist, not just the server.
  "$TEMPORAL_BIN" operator namespace describe --namespace "$TEMPORAL_NAMESPACE" \
    --address "$TEMPORAL_HOST:$TEMPORAL_PORT" --command-timeout 3s >/dev/null 2>&1
}

start_temporal() {
  local pid
  local -a args
  if ! is_local_host "$TEMPORAL_HOST"; then
    note "temporal: TEMPORAL_ADDRESS=$TEMPORAL_ADDRESS is not local; not started here"
    return
  fi
  pid=$(our_pid temporal)
  if [[ -n $pid ]]; then
    require_same_config temporal "$pid" "--port $TEMPORAL_PORT " "port $TEMPORAL_PORT (TEMPORAL_ADDRESS)"
    require_same_config temporal "$pid" "--ui-port $TEMPORAL_UI_PORT " "UI port $TEMPORAL_UI_PORT (TEMPORAL_UI_PORT)"
    wait_ready temporal "$pid" temporal_ready "temporal operator cluster health = SERVING" no || exit 1
    ok "temporal: already running (pid $pid, port $TEMPORAL_PORT)"
    return
  fi
  need_venv_bin "$TEMPORAL_BIN"
  require_free_port "$TEMPORAL_PORT" "TEMPORAL_ADDRESS=$TEMPORAL_HOST:<port>"
  require_free_port "$TEMPORAL_UI_PORT" "TEMPORAL_UI_PORT=<port>"
  # The other ports the dev server opens (history, matching, internal frontend, HTTP API, metrics)
  # are free ports it picks itself, so they cannot clash.
  # The web UI stays on: it is how developers look at workflows and their histories. Its news feed
  # is off because it would reach out to the internet.
  args=(server start-dev --db-filename "$TEMPORAL_DB" --ip "$TEMPORAL_HOST" --port "$TEMPORAL_PORT"
    --ui-port "$TEMPORAL_UI_PORT" --ui-disable-news-fetch --log-level warn
    # Fair share between tenants on shared build queues: the builds carry the tenant id as fairness key, which
    # the server honours with matching.enableFairness; fairness holds within a queue partition, so one partition
    # (build queues dispatch a few tasks a minute). docs/security.md, "Fair use".
    --dynamic-config-value matching.enableFairness=true
    --dynamic-config-value matching.numTaskqueueReadPartitions=1
    --dynamic-config-value matching.numTaskqueueWritePartitions=1)
  # "default" always exists; any other namespace is created at launch.
  [[ $TEMPORAL_NAMESPACE == default ]] || args+=(--namespace "$TEMPORAL_NAMESPACE")
  launch temporal "$KILN_DATA_DIR" "$TEMPORAL_BIN" "${args[@]}"
  pid=$STARTED_PID
  wait_ready temporal "$pid" temporal_ready "temporal operator cluster health = SERVING" || exit 1
  ok "temporal: started (pid $pid, gRPC $TEMPORAL_HOST:$TEMPORAL_PORT, UI http://$TEMPORAL_HOST:$TEMPORAL_UI_PORT, db $(show_path "$TEMPORAL_DB"))"
}

status_temporal() {
  STATUS_PORTS="$TEMPORAL_PORT ui:$TEMPORAL_UI_PORT"
  if ! is_local_host "$TEMPORAL_HOST"; then
    STATUS_STATE='external (not managed)'
    return
  fi
  STATUS_PID=$(our_pid temporal)
  [[ -n $STATUS_PID ]] || return 0
  if temporal_ready; then STATUS_STATE=running; else STATUS_STATE='running (not ready)'; fi
}

# === s3 (SeaweedFS `weed mini`) ==================================================================
s3_init_vars() {
  if parse_host_port "$S3_ENDPOINT"; then
    S3_HOST=$HP_HOST
    S3_PORT=$HP_PORT
  else
    # No port: a remote endpoint such as https://s3.amazonaws.com, never one we start.
    S3_HOST=${S3_ENDPOINT#*://}
    S3_HOST=${S3_HOST%%/*}
    S3_PORT=''
    is_local_host "$S3_HOST" && die "S3_ENDPOINT='$S3_ENDPOINT' needs an explicit port for the local S3 (http://host:port)"
  fi
  WEED_BIN="$KILN_VENV/bin/weed"
  S3_DIR="$KILN_DATA_DIR/s3"
}

# Every port `weed mini` opens, as "port|how to change it". All are pinned on its command line:
# left alone, it also opens an admin server (even with -admin.ui=false), WebDAV, an Iceberg catalog
# and a Lance server on fixed default ports. Those three extra servers are turned off.
s3_ports() {
  local base name var
  printf '%s|%s\n' "$S3_PORT" "S3_ENDPOINT=http://$S3_HOST:<port>" \
    "$((S3_PORT + 10000))" "S3_ENDPOINT=http://$S3_HOST:<port> (its gRPC port is the S3 port + 10000)"
  for name in MASTER VOLUME FILER ADMIN; do
    var=KILN_WEED_${name}_PORT
    base=${!var}
    printf '%s|%s\n' "$base" "$var=<port>" "$((base + 10000))" "$var=<port> (its gRPC port is $var + 10000)"
  done
}

# HEAD on the bucket, signed with SigV4: 200 means the gateway is up, the credentials are accepted
# and the bucket exists (weed creates it at startup).
s3_head_bucket() {
  curl -s -o /dev/null -w '%{http_code}' -I --max-time 3 "$@" "$S3_ENDPOINT/$S3_BUCKET" 2>/dev/null || true
}
s3_ready() {
  [[ $(s3_head_bucket --aws-sigv4 "aws:amz:$S3_REGION:s3" --user "$S3_ACCESS_KEY_ID:$S3_SECRET_ACCESS_KEY") == 200 ]]
}

start_s3() {
  local pid line port how unsigned
  if ! is_local_host "$S3_HOST"; then
    note "s3: S3_ENDPOINT=$S3_ENDPOINT is not local; not started here"
    return
  fi
  pid=$(our_pid s3)
  if [[ -n $pid ]]; then
    require_same_config s3 "$pid" "-s3.port=$S3_PORT " "port $S3_PORT (S3_ENDPOINT)"
    wait_ready s3 "$pid" s3_ready "a signed HEAD of bucket '$S3_BUCKET' answering 200" no || exit 1
    ok "s3: already running (pid $pid, $S3_ENDPOINT, bucket '$S3_BUCKET')"
    return
  fi
  need_venv_bin "$WEED_BIN"
  while IFS= read -r line; do
    port=${line%%|*}
    how=${line#*|}
    require_free_port "$port" "$how"
  done < <(s3_ports)
  mkdir -p "$S3_DIR" "$KILN_LOG_DIR/s3"
  # AWS_* name the one admin identity of `weed mini`; it then requires SigV4 on every request.
  # glog's files go to logs/s3/ (default: /tmp); the console output goes to logs/s3.log.
  launch s3 "$KILN_DATA_DIR" env AWS_ACCESS_KEY_ID="$S3_ACCESS_KEY_ID" AWS_SECRET_ACCESS_KEY="$S3_SECRET_ACCESS_KEY" \
    "$WEED_BIN" -logdir="$KILN_LOG_DIR/s3" mini -dir="$S3_DIR" -bucket="$S3_BUCKET" \
    -master.telemetry=false -admin.ui=false -webdav=false -s3.port.iceberg=0 -s3.port.lance=0 \
    -ip="$S3_HOST" -ip.bind="$S3_HOST" \
    -s3.port="$S3_PORT" -s3.port.grpc="$((S3_PORT + 10000))" \
    -master.port="$KILN_WEED_MASTER_PORT" -master.port.grpc="$((KILN_WEED_MASTER_PORT + 10000))" \
    -volume.port="$KILN_WEED_VOLUME_PORT" -volume.port.grpc="$((KILN_WEED_VOLUME_PORT + 10000))" \
    -filer.port="$KILN_WEED_FILER_PORT" -filer.port.grpc="$((KILN_WEED_FILER_PORT + 10000))" \
    -admin.port="$KILN_WEED_ADMIN_PORT" -admin.port.grpc="$((KILN_WEED_ADMIN_PORT + 10000))"
  pid=$STARTED_PID
  wait_ready s3 "$pid" s3_ready "a signed HEAD of bucket '$S3_BUCKET' answering 200" || exit 1
  # A local store that answers anonymous requests would hide auth bugs until production.
  unsigned=$(s3_head_bucket)
  [[ $unsigned == 403 ]] || warn "s3: an unsigned request got HTTP $unsigned (expected 403): SigV4 auth looks off"
  ok "s3: started (pid $pid, $S3_ENDPOINT, bucket '$S3_BUCKET', data $(show_path "$S3_DIR"))"
}

status_s3() {
  STATUS_PORTS="$S3_PORT (+$KILN_WEED_MASTER_PORT,$KILN_WEED_VOLUME_PORT,$KILN_WEED_FILER_PORT,$KILN_WEED_ADMIN_PORT,gRPC+10000)"
  if ! is_local_host "$S3_HOST"; then
    STATUS_STATE='external (not managed)'
    STATUS_PORTS=$S3_ENDPOINT
    return
  fi
  STATUS_PID=$(our_pid s3)
  [[ -n $STATUS_PID ]] || return 0
  if s3_ready; then STATUS_STATE=running; else STATUS_STATE='running (not ready)'; fi
}

# === api and worker ==============================================================================
# The services run as JavaScript compiled by scripts/build.ts into dist/ (SWC, which keeps the decorator
# metadata Nest's injection and TypeORM's columns need): the in-process TypeScript loader the tests use
# would cost each service about a hundred MiB more. A smaller young generation (4 MiB semi-spaces) keeps
# the API's peak memory near its live data (bench/README.md, "Uploads").
app_entry() { printf '%s/apps/%s/src/main.ts' "$KILN_ROOT" "$1"; }
app_dist_entry() { printf '%s/dist/apps/%s/src/main.js' "$KILN_ROOT" "$1"; }
readonly APP_NODE_FLAGS=(--enable-source-maps --max-semi-space-size=4)

# Compiles dist/ when a source, nest-cli.json or the lockfile changed since the last build (a running
# service's files are not replaced for nothing).
ensure_built() {
  local stamp=$KILN_STAMP_DIR/dist.sha256 want
  local -a sources
  mapfile -t sources < <(cd "$KILN_ROOT" && find apps/api/src apps/worker/src libs/*/src migrations -name '*.ts' -not -name '*.spec.ts' | sort)
  want=$(cd "$KILN_ROOT" && hash_files nest-cli.json package-lock.json scripts/build.ts "${sources[@]}")
  if [[ -f $stamp && $(<"$stamp") == "$want" && -f $(app_dist_entry api) && -f $(app_dist_entry worker) ]]; then return; fi
  note "build: compiling the API and the worker into dist/ ..."
  (cd "$KILN_ROOT" && node --import @swc-node/register/esm-register scripts/build.ts) || die "build: scripts/build.ts failed"
  mkdir -p "$KILN_STAMP_DIR"
  printf '%s\n' "$want" >"$stamp"
}

api_ready() { curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$KILN_API_PORT/v1/health" 2>/dev/null; }
# The worker has no port: it prints "worker ready" once it polls its task queues.
worker_ready() {
  local offset=0 log
  log=$(log_file worker)
  [[ -f $KILN_RUN_DIR/worker.logoffset ]] && read -r offset <"$KILN_RUN_DIR/worker.logoffset"
  tail -c +"$((offset + 1))" "$log" 2>/dev/null | grep -q 'worker ready'
}

start_app() {
  local svc=$1 entry pid probe what
  entry=$(app_entry "$svc")
  probe=${svc}_ready
  if [[ $svc == api ]]; then what="GET http://127.0.0.1:$KILN_API_PORT/v1/health = 200"; else what="'worker ready' in its log"; fi
  if [[ ! -f $entry ]]; then
    if ((EXPLICIT)); then die "$svc: $(show_path "$entry") does not exist yet; nothing to start."; fi
    warn "$svc: skipped, $(show_path "$entry") does not exist yet"
    return
  fi
  pid=$(our_pid "$svc")
  if [[ -n $pid ]]; then
    wait_ready "$svc" "$pid" "$probe" "$what" no || exit 1
    ok "$svc: already running (pid $pid)"
    return
  fi
  [[ -d $KILN_ROOT/node_modules/@swc-node/register ]] || die "$svc: node_modules is missing or incomplete: run scripts/setup.sh first."
  if [[ $svc == api ]]; then require_free_port "$KILN_API_PORT" "KILN_API_PORT=<port>"; fi
  ensure_built
  launch "$svc" "$KILN_ROOT" node "${APP_NODE_FLAGS[@]}" "$(app_dist_entry "$svc")"
  pid=$STARTED_PID
  wait_ready "$svc" "$pid" "$probe" "$what" || exit 1
  if [[ $svc == api ]]; then
    ok "api: started (pid $pid, http://127.0.0.1:$KILN_API_PORT)"
  else
    ok "worker: started (pid $pid)"
  fi
}

status_app() {
  local svc=$1
  if [[ $svc == api ]]; then STATUS_PORTS=$KILN_API_PORT; fi
  if [[ ! -f $(app_entry "$svc") ]]; then
    STATUS_STATE='not written yet'
    return
  fi
  STATUS_PID=$(our_pid "$svc")
  [[ -n $STATUS_PID ]] || return 0
  if "${svc}_ready"; then STATUS_STATE=running; else STATUS_STATE='running (not ready)'; fi
}

# === generic stop / status / dispatch ============================================================
stop_service() {
  local svc=$1 pid
  if [[ $svc == postgres ]]; then
    stop_postgres
    return
  fi
  pid=$(our_pid "$svc")
  if [[ -z $pid ]]; then
    note "$svc: not running"
    return
  fi
  stop_pid "$pid" "$svc" "$STOP_GRACE_S" || die "$svc: pid $pid does not stop"
  rm -f "$(pid_file "$svc")"
  ok "$svc: stopped (pid $pid)"
}

start_service() {
  CURRENT_SVC=$1
  case $1 in
    postgres) start_postgres ;;
    temporal) start_temporal ;;
    s3) start_s3 ;;
    api | worker) start_app "$1" ;;
  esac
}

cmd_status() {
  local svc down=0 fmt='%-9s %-24s %-8s %-40s %s\n'
  # shellcheck disable=SC2059 # the format is a constant defined just above
  printf "$fmt" SERVICE STATE PID 'PORT(S)' LOG
  for svc in "$@"; do
    STATUS_STATE=stopped STATUS_PID='' STATUS_PORTS='' STATUS_LOG=$(show_path "$(log_file "$svc")")
    case $svc in
      postgres) status_postgres ;;
      temporal) status_temporal ;;
      s3) status_s3 ;;
      api | worker) status_app "$svc" ;;
    esac
    case $STATUS_STATE in
      running | external*) ;;
      *) [[ " ${STATUS_REQUIRED[*]} " == *" $svc "* ]] && down=1 ;;
    esac
    [[ $STATUS_STATE == external* ]] && STATUS_LOG='-'
    # shellcheck disable=SC2059
    printf "$fmt" "$svc" "$STATUS_STATE" "${STATUS_PID:--}" "${STATUS_PORTS:--}" "$STATUS_LOG"
  done
  return $((down ? 3 : 0))
}

# Turns the command's arguments into services in start order. Sets EXPLICIT=1 when the user named
# services (then a missing app entry file is an error rather than a skip).
resolve_services() {
  local default=$1 arg svc
  shift
  local -A want=()
  EXPLICIT=0
  if (($# == 0)); then set -- "$default"; fi
  for arg in "$@"; do
    case $arg in
      all) for svc in "${ALL[@]}"; do want[$svc]=1; done ;;
      infra) for svc in "${INFRA[@]}"; do want[$svc]=1; done ;;
      apps) for svc in "${APPS[@]}"; do want[$svc]=1; done ;;
      postgres | temporal | s3 | api | worker)
        want[$arg]=1
        EXPLICIT=1
        ;;
      running)
        for svc in "${INFRA[@]}"; do want[$svc]=1; done
        for svc in "${APPS[@]}"; do [[ -n $(our_pid "$svc") ]] && want[$svc]=1; done
        ;;
      *) die "unknown service '$arg' (services: ${ALL[*]}; groups: all, infra)" ;;
    esac
  done
  SERVICES=()
  for svc in "${ALL[@]}"; do
    if [[ -n ${want[$svc]:-} ]]; then SERVICES+=("$svc"); fi
  done
}

reverse() {
  local i
  REVERSED=()
  for ((i = $# ; i > 0; i--)); do REVERSED+=("${!i}"); done
}

# One start/stop at a time per KILN_HOME: two concurrent starts would race for the same ports.
take_lock() {
  exec 9>"$KILN_RUN_DIR/stack.lock"
  if ! flock -n 9; then
    note "another scripts/stack.sh is starting or stopping services; waiting for it ..."
    flock -w 600 9 || die "gave up waiting for the other scripts/stack.sh (lock $(show_path "$KILN_RUN_DIR/stack.lock"))"
  fi
}

main() {
  local cmd=${1:-} svc t0=$EPOCHREALTIME
  [[ -n $cmd ]] || {
    usage
    exit 1
  }
  shift
  mkdir -p "$KILN_RUN_DIR" "$KILN_LOG_DIR" "$KILN_DATA_DIR"
  pg_init_vars
  temporal_init_vars
  s3_init_vars
  cd "$KILN_ROOT"
  case $cmd in
    start)
      resolve_services infra "$@"
      take_lock
      for svc in "${SERVICES[@]}"; do start_service "$svc"; done
      say "done in $(elapsed_since "$t0"); see: scripts/stack.sh status"
      ;;
    stop)
      resolve_services all "$@"
      take_lock
      reverse "${SERVICES[@]}"
      for svc in "${REVERSED[@]}"; do stop_service "$svc"; done
      ;;
    restart)
      resolve_services running "$@"
      take_lock
      reverse "${SERVICES[@]}"
      for svc in "${REVERSED[@]}"; do stop_service "$svc"; done
      for svc in "${SERVICES[@]}"; do start_service "$svc"; done
      say "done in $(elapsed_since "$t0"); see: scripts/stack.sh status"
      ;;
    status)
      resolve_services all "$@"
      # The exit code answers "is what I need up?": the infra by default, else the named services.
      if (($# == 0)); then STATUS_REQUIRED=("${INFRA[@]}"); else STATUS_REQUIRED=("${SERVICES[@]}"); fi
      cmd_status "${SERVICES[@]}"
      ;;
    -h | --help | help) usage ;;
    *)
      usage >&2
      exit 1
      ;;
  esac
}

main "$@"
