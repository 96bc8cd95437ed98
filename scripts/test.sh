#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# The one test command (README: `npm test`; .ci/run calls it). On a fresh clone it installs what is
# missing, starts the local stack (PostgreSQL, Temporal, SeaweedFS), builds the fixture models, then runs
# every check: format, lint, typecheck, Python lint, Terraform, pytest, node unit tests, and the end-to-end tests
# against the real stack and the real compiler. Any failure fails the run.
#
# Usage: scripts/test.sh [--no-e2e]     (--no-e2e: everything but test/*.e2e-spec.ts, for quick loops)
set -euo pipefail

# shellcheck source=lib/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/env.sh"
# shellcheck source=lib/common.sh
source "$KILN_ROOT/scripts/lib/common.sh"
cd "$KILN_ROOT"

e2e=1
[[ ${1:-} == --no-e2e ]] && e2e=0

step() { printf '\n%s== %s ==%s\n' "$_c_dim" "$*" "$_c_off"; }
export KILN_FIXTURES_DIR="$KILN_HOME_DIR/fixtures"
node_test=(node --import @swc-node/register/esm-register --test --test-reporter=spec --test-concurrency=1)

step "setup"
# --browser: the dashboard's end-to-end tests (test/web.e2e-spec.ts) drive Debian's Chromium.
# --cross: the linux-aarch64 target is built and verified under qemu (pytest, test/cross-aarch64.e2e-spec.ts).
if ((e2e)); then scripts/setup.sh --browser --cross; else scripts/setup.sh --cross; fi
# Kiln's own Node (installed by setup.sh, first on PATH since env.sh) from here on, not a remembered one.
hash -r
scripts/stack.sh start
# The tests run their own API and workers; a worker left running by `npm start` would take their builds.
scripts/stack.sh stop api worker >/dev/null

step "fixture models (plain torch)"
fixtures_stamp="$KILN_STAMP_DIR/fixtures.sha256"
want=$({ hash_files test/fixtures/make_models.py; "$KILN_PYTHON" -c 'import torch; print(torch.__version__)'; } | sha256sum | cut -d' ' -f1)
if [[ ! -f $fixtures_stamp || $(<"$fixtures_stamp") != "$want" || ! -f $KILN_FIXTURES_DIR/mlp.pt2 ]]; then
  "$KILN_PYTHON" test/fixtures/make_models.py "$KILN_FIXTURES_DIR" 2>&1 | grep -v Warning
  printf '%s\n' "$want" >"$fixtures_stamp"
else
  ok "fixtures up to date in $KILN_FIXTURES_DIR"
fi

step "format, lint, typecheck"
npx prettier --check . --log-level warn
npx eslint . --max-warnings 0
npx tsc -p .
npx tsc -p apps/web
"$KILN_VENV/bin/ruff" check python test/fixtures bench
"$KILN_VENV/bin/ruff" format --check python test/fixtures bench

step "infrastructure (terraform fmt, validate, test)"
scripts/lib/terraform-check.sh

# The Python tests and the node unit tests run beside the end-to-end tests (each into its own log, shown when it
# ends): the unit tests mostly wait (child processes, Temporal test servers) and the e2e tests wait on builds, so on
# a 2-core machine the three together take little more than the e2e tests alone (bench/README.md, "The test
# command's time"). Nothing is shared between them but the machine: pytest runs the driver in folders of its own, and
# the unit tests use tenants, queues and Temporal test servers of their own.
py_dirs=()
for d in python/*/tests; do [[ -d $d ]] && py_dirs+=("$d"); done
mapfile -t unit < <(find libs apps -name '*.spec.ts' -not -path '*/node_modules/*' | sort)
mkdir -p "$KILN_LOG_DIR"
pytest_log="$KILN_LOG_DIR/test-pytest.log"
unit_log="$KILN_LOG_DIR/test-node-unit.log"
# The cross builds (tests/test_cross_aarch64.py) fail here instead of skipping: setup --cross installed the toolchain.
KILN_REQUIRE_CROSS=1 "$KILN_VENV/bin/python" -m pytest -q "${py_dirs[@]}" >"$pytest_log" 2>&1 &
pytest_pid=$!
"${node_test[@]}" "${unit[@]}" >"$unit_log" 2>&1 &
unit_pid=$!
# An interrupted or failed run leaves none of them behind.
trap 'kill "$pytest_pid" "$unit_pid" 2>/dev/null || true' EXIT
note "python tests (compile driver$( [[ -d python/runtime ]] && echo ', device runtime')) and node unit tests started beside: $(show_path "$pytest_log"), $(show_path "$unit_log")"

e2e_rc=0
if ((e2e)); then
  step "end-to-end tests (real stack, real compiler)"
  mapfile -t e2e_files < <(find test -name '*.e2e-spec.ts' | sort)
  "${node_test[@]}" --test-timeout=1800000 "${e2e_files[@]}" || e2e_rc=$?
fi

# Each one's whole output, its closing summary last.
finished() { # finished NAME PID LOG
  local rc=0
  wait "$2" || rc=$?
  step "$1"
  cat "$3"
  return "$rc"
}
unit_rc=0 pytest_rc=0
finished "node unit tests" "$unit_pid" "$unit_log" || unit_rc=$?
finished "python tests (compile driver$( [[ -d python/runtime ]] && echo ', device runtime'))" "$pytest_pid" "$pytest_log" || pytest_rc=$?
trap - EXIT
((e2e_rc == 0)) || die "end-to-end tests failed (exit $e2e_rc)"
((unit_rc == 0)) || die "node unit tests failed (exit $unit_rc)"
((pytest_rc == 0)) || die "python tests failed (exit $pytest_rc)"
ok "all tests passed"
