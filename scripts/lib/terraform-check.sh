#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Checks infra/terraform offline: fmt, init (AWS provider from the filesystem mirror named in
# infra/terraform/.terraformrc, no registry, no backend), validate, and `terraform test` (mocked AWS provider:
# no credentials). Any failure fails. scripts/test.sh runs it; run it alone with scripts/lib/terraform-check.sh.
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
source "$KILN_ROOT/scripts/lib/common.sh"

command -v terraform >/dev/null ||
  die "terraform is not installed: infra/terraform needs Terraform >= 1.9 (https://developer.hashicorp.com/terraform/install)"

cd "$KILN_ROOT/infra/terraform"
export TF_CLI_CONFIG_FILE="$PWD/.terraformrc" TF_IN_AUTOMATION=1
terraform fmt -check -recursive
# -lockfile=readonly: the committed .terraform.lock.hcl must already match the provider the mirror holds.
terraform init -backend=false -input=false -lockfile=readonly -no-color >/dev/null
terraform validate -no-color
terraform test -no-color
