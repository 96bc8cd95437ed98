#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Kiln's main job on local defaults (README: `npm start`). On a fresh clone: installs what is missing,
# starts the stack (PostgreSQL, Temporal, SeaweedFS, the API and a build worker), exports the sample
# model in plain torch, and runs the demo: upload, compile for every x86 target this machine can build,
# watch the builds, show the verified artifacts. The services keep running afterwards (`npm stop`).
set -euo pipefail

# shellcheck source=lib/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/env.sh"
# shellcheck source=lib/common.sh
source "$KILN_ROOT/scripts/lib/common.sh"
cd "$KILN_ROOT"

scripts/setup.sh
# Kiln's own Node (installed by setup.sh, first on PATH since env.sh) from here on, not a remembered one.
hash -r
scripts/stack.sh start all

sample="$KILN_HOME_DIR/fixtures/mlp.pt2"
if [[ ! -f $sample ]]; then
  note "exporting the sample model (plain torch) ..."
  "$KILN_PYTHON" test/fixtures/make_models.py "$KILN_HOME_DIR/fixtures" --only mlp 2>&1 | grep -v Warning
fi
node --import @swc-node/register/esm-register scripts/demo.ts "$sample"
ok "dashboard: http://127.0.0.1:${KILN_API_PORT:-3000}/ (sign in with the key in $KILN_HOME_DIR/demo-credentials.json)"
