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
if ((e2e)); then scripts/setup.sh --browser; else scripts/setup.sh; fi
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

step "python tests (compile driver$( [[ -d python/runtime ]] && echo ', device runtime'))"
py_dirs=()
for d in python/*/tests; do [[ -d $d ]] && py_dirs+=("$d"); done
"$KILN_VENV/bin/python" -m pytest -q "${py_dirs[@]}"

step "node unit tests"
mapfile -t unit < <(find libs apps -name '*.spec.ts' -not -path '*/node_modules/*' | sort)
"${node_test[@]}" "${unit[@]}"

if ((e2e)); then
  step "end-to-end tests (real stack, real compiler)"
  mapfile -t e2e_files < <(find test -name '*.e2e-spec.ts' | sort)
  "${node_test[@]}" --test-timeout=1800000 "${e2e_files[@]}"
fi
ok "all tests passed"
