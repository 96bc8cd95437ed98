# shellcheck shell=bash disable=SC2034
# Kiln's local configuration, loaded in exactly one place. Sourced by scripts/setup.sh and
# scripts/stack.sh (never executed on its own).
#
# Precedence (the same as dotenv in the Node apps): variables already in the environment win,
# then the repo's .env, then .env.example's defaults. Every variable ends up exported, so the
# services stack.sh starts see the same values. (SC2034 is off: the paths below are for callers.)

KILN_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

# Reads KEY=VALUE lines without executing the file (a .env is data, not a script), and sets
# only the keys the environment does not already have.
kiln_load_dotenv() {
  local file=$1 line key value
  [[ -f $file ]] || return 0
  while IFS= read -r line || [[ -n $line ]]; do
    line=${line%$'\r'}
    [[ $line =~ ^[[:space:]]*(export[[:space:]]+)?([A-Za-z_][A-Za-z0-9_]*)[[:space:]]*=(.*)$ ]] || continue
    key=${BASH_REMATCH[2]}
    value=${BASH_REMATCH[3]}
    if [[ $value =~ ^[[:space:]]*\"(.*)\"[[:space:]]*$ || $value =~ ^[[:space:]]*\'(.*)\'[[:space:]]*$ ]]; then
      value=${BASH_REMATCH[1]}
    else
      # Unquoted: drop an inline " # comment" and surrounding blanks, as dotenv does.
      value=${value%%[[:space:]]#*}
      value=${value#"${value%%[![:space:]]*}"}
      value=${value%"${value##*[![:space:]]}"}
    fi
    [[ -n ${!key+x} ]] && continue
    export "$key=$value"
  done <"$file"
}

# Sets NAME to VALUE when NAME is unset or empty, and exports it for the processes we start.
kiln_default() {
  local name=$1 value=$2
  if [[ -z ${!name:-} ]]; then
    export "$name=$value"
  else
    export "${name?}"
  fi
}

kiln_load_dotenv "$KILN_ROOT/.env"

# --- Defaults -------------------------------------------------------------------------------------
# .env.example is the one list of variables and local defaults: reading it here (after .env, and
# again only for what is still unset) keeps the scripts and the apps on the same values with no
# copy to drift. KILN_PYTHON is derived first so it follows a moved KILN_HOME; with the default
# KILN_HOME it is exactly .env.example's .kiln/venv/bin/python.
kiln_default KILN_HOME .kiln
kiln_default KILN_PYTHON "$KILN_HOME/venv/bin/python"
kiln_load_dotenv "$KILN_ROOT/.env.example"
# Fallbacks for what these scripts read themselves, should .env.example ever lose a line.
kiln_default DATABASE_URL postgres://postgres@127.0.0.1:5432/kiln
kiln_default TEMPORAL_ADDRESS 127.0.0.1:7233
kiln_default TEMPORAL_NAMESPACE default
kiln_default TEMPORAL_UI_PORT 8233
kiln_default S3_ENDPOINT http://127.0.0.1:8333
kiln_default S3_REGION us-east-1
kiln_default S3_BUCKET kiln
kiln_default S3_ACCESS_KEY_ID kiln
kiln_default S3_SECRET_ACCESS_KEY kiln-local-secret
kiln_default KILN_API_PORT 3000


# --- Used only by scripts/stack.sh (the local SeaweedFS's extra ports, and how long to wait) ------
# `weed mini` opens more than the S3 port; they are pinned so a clash is found before starting.
# Each gRPC port is the HTTP port + 10000 (SeaweedFS's convention).
kiln_default KILN_WEED_MASTER_PORT 9333
kiln_default KILN_WEED_VOLUME_PORT 9340
kiln_default KILN_WEED_FILER_PORT 8888
kiln_default KILN_WEED_ADMIN_PORT 23646
kiln_default KILN_STACK_TIMEOUT_S 90

# --- Derived, absolute paths (the scripts may be called from any directory) ----------------------
if [[ $KILN_HOME == /* ]]; then
  KILN_HOME_DIR=$KILN_HOME
else
  KILN_HOME_DIR="$KILN_ROOT/${KILN_HOME#./}"
fi
KILN_VENV="$KILN_HOME_DIR/venv"
# Node.js 24 LTS, installed by scripts/setup.sh from the npm registry: every service, script and test runs on it;
# the machine's Node only bootstraps it (and runs `npm start` / `npm test` up to this line).
KILN_NODE_DIR="$KILN_HOME_DIR/node"
case ":$PATH:" in
  *":$KILN_NODE_DIR/bin:"*) ;;
  *) export PATH="$KILN_NODE_DIR/bin:$PATH" ;;
esac
KILN_RUN_DIR="$KILN_HOME_DIR/run"
KILN_LOG_DIR="$KILN_HOME_DIR/logs"
KILN_DATA_DIR="$KILN_HOME_DIR/data"
KILN_STAMP_DIR="$KILN_HOME_DIR/stamps"
