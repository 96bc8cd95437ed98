# shellcheck shell=bash disable=SC2034
# Small helpers shared by scripts/setup.sh and scripts/stack.sh. Sourced, never executed.
# (SC2034 is off: the parse_* helpers set variables for the caller to read.)

# --- Messages -----------------------------------------------------------------------------------
# Colour only on a terminal, so CI logs stay plain text.
if [[ -t 1 && -z ${NO_COLOR:-} ]]; then
  _c_red=$'\e[31m' _c_grn=$'\e[32m' _c_ylw=$'\e[33m' _c_dim=$'\e[2m' _c_off=$'\e[0m'
else
  _c_red='' _c_grn='' _c_ylw='' _c_dim='' _c_off=''
fi
say() { printf '%s\n' "$*"; }
ok() { printf '%s✓%s %s\n' "$_c_grn" "$_c_off" "$*"; }
note() { printf '%s·%s %s\n' "$_c_dim" "$_c_off" "$*"; }
warn() { printf '%s!%s %s\n' "$_c_ylw" "$_c_off" "$*" >&2; }
err() { printf '%serror:%s %s\n' "$_c_red" "$_c_off" "$*" >&2; }
# A path as shown to people: relative to the repo when it lies inside it (setup.sh and stack.sh both print paths).
show_path() { printf '%s' "${1#"$KILN_ROOT"/}"; }
die() {
  err "$*"
  exit 1
}

# "a.b.c" >= "x.y.z", numerically per component.
version_ge() {
  local IFS=.
  local -a got need
  read -r -a got <<<"$1"
  read -r -a need <<<"$2"
  local i
  for i in 0 1 2; do
    if ((${got[i]:-0} > ${need[i]:-0})); then return 0; fi
    if ((${got[i]:-0} < ${need[i]:-0})); then return 1; fi
  done
  return 0
}

# Seconds since a $EPOCHREALTIME value, with one decimal ("0.2s"); SECONDS only counts whole ones.
elapsed_since() {
  local start=${1/[.,]/} now=${EPOCHREALTIME/[.,]/} tenths
  tenths=$(((now - start) / 100000))
  printf '%d.%ds' $((tenths / 10)) $((tenths % 10))
}

# sha256 of the given files' names and contents (missing files count as empty), for stamps.
hash_files() {
  local f
  for f in "$@"; do
    printf '%s\n' "$f"
    if [[ -f $f ]]; then cat -- "$f"; fi
  done | sha256sum | cut -d' ' -f1
}

# --- Processes ----------------------------------------------------------------------------------
# The pid in a pid file, if the file exists and holds a number.
read_pid() {
  local file=$1 pid=''
  if [[ -f $file ]]; then read -r pid <"$file" || true; fi
  [[ $pid =~ ^[0-9]+$ ]] && printf '%s' "$pid"
}

# True when pid is alive and its command line contains every given fragment. Checking the command
# line (not only "is some process alive") keeps a recycled pid from being mistaken for ours.
pid_matches() {
  local pid=$1 cmdline frag
  shift
  [[ -n $pid && -r /proc/$pid/cmdline ]] || return 1
  cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
  [[ -n $cmdline ]] || return 1 # a zombie has an empty command line
  for frag in "$@"; do
    [[ $cmdline == *"$frag"* ]] || return 1
  done
}

# Sends TERM to a service (its whole process group when it leads one, so children go too), waits,
# then KILLs what is left. Only called with pids we started and verified with pid_matches.
stop_pid() {
  local pid=$1 name=$2 grace=${3:-20} target i pgid
  pgid=$(ps -o pgid= -p "$pid" 2>/dev/null | tr -d ' ') || true
  if [[ $pgid == "$pid" ]]; then target="-$pid"; else target=$pid; fi
  kill -TERM -- "$target" 2>/dev/null || return 0
  for ((i = 0; i < grace * 5; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.2
  done
  warn "$name (pid $pid) did not stop within ${grace}s after TERM; sending KILL"
  kill -KILL -- "$target" 2>/dev/null || true
  for ((i = 0; i < 25; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.2
  done
  return 1
}

# --- Ports --------------------------------------------------------------------------------------
# Prints "name (pid N)" of whoever listens on TCP port (any address), or nothing when it is free.
# Prints "unknown process" when something listens but ss cannot name it (another user's process).
port_owner() {
  local port=$1 line users
  if command -v ss >/dev/null 2>&1; then
    line=$(ss -Hltnp "sport = :$port" 2>/dev/null | head -n 1)
    [[ -n $line ]] || return 0
    users=$(sed -n 's/.*users:((\("[^"]*"\),pid=\([0-9]*\).*/\1 (pid \2)/p' <<<"$line" | tr -d '"')
    printf '%s' "${users:-unknown process}"
  elif (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    printf 'unknown process'
  fi
}

# --- URLs ---------------------------------------------------------------------------------------
# Splits DATABASE_URL-style URLs. Sets PGU_USER PGU_HOST PGU_PORT PGU_DB PGU_QUERY PGU_PREFIX
# (everything before the database name, to build a URL for another database on the same server).
parse_pg_url() {
  local url=$1
  local re='^(postgres(ql)?://(([^:@/]*)(:[^@/]*)?@)?(\[[^]]*\]|[^:/?]+)(:([0-9]+))?)/([^?]*)(\?.*)?$'
  [[ $url =~ $re ]] || return 1
  PGU_PREFIX=${BASH_REMATCH[1]}
  PGU_USER=${BASH_REMATCH[4]:-postgres}
  PGU_HOST=${BASH_REMATCH[6]}
  PGU_PORT=${BASH_REMATCH[8]:-5432}
  PGU_DB=${BASH_REMATCH[9]}
  PGU_QUERY=${BASH_REMATCH[10]:-}
  [[ -n $PGU_DB ]]
}

# "host:port" or "scheme://host:port[/...]" -> sets HP_HOST HP_PORT (port required: local services
# need to know exactly which one to open and check).
parse_host_port() {
  local s=${1#*://}
  s=${s%%/*}
  [[ $s =~ ^(\[[^]]*\]|[^:]+):([0-9]+)$ ]] || return 1
  HP_HOST=${BASH_REMATCH[1]}
  HP_PORT=${BASH_REMATCH[2]}
}

is_local_host() {
  case $1 in
    127.0.0.1 | localhost | ::1 | '[::1]') return 0 ;;
    *) return 1 ;;
  esac
}
