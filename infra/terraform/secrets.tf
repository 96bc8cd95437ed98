# Secrets live in Secrets Manager; Terraform creates the containers, never the values (they would land in the
# state). Set each value once after the first apply: `aws secretsmanager put-secret-value --secret-id <arn> ...`.

# The orchestrator's Ed25519 signing key (PEM). Only the orchestrator role may read it (iam.tf).
resource "aws_secretsmanager_secret" "signing_key" {
  name        = "${var.name}/signing-key"
  description = "Kiln manifest signing key (PEM): orchestrator only."
}

# DATABASE_URL of the API and orchestrator (a role made from the RDS master secret, not the master itself).
resource "aws_secretsmanager_secret" "database_url" {
  name        = "${var.name}/database-url"
  description = "DATABASE_URL of the API and the orchestrator."
}

# DATABASE_URL of the build hosts: a role that may only update build progress rows (docs/security.md).
resource "aws_secretsmanager_secret" "build_database_url" {
  name        = "${var.name}/build-database-url"
  description = "DATABASE_URL of the build hosts (build progress rows only)."
}

resource "aws_secretsmanager_secret" "admin_token" {
  name        = "${var.name}/admin-token"
  description = "KILN_ADMIN_TOKEN of the API."
}

# Temporal Cloud mTLS client certificate and key (temporal_mode = "cloud" only).
resource "aws_secretsmanager_secret" "temporal_tls_cert" {
  count       = var.temporal_mode == "cloud" ? 1 : 0
  name        = "${var.name}/temporal-tls-cert"
  description = "Temporal Cloud mTLS client certificate (PEM)."
}

resource "aws_secretsmanager_secret" "temporal_tls_key" {
  count       = var.temporal_mode == "cloud" ? 1 : 0
  name        = "${var.name}/temporal-tls-key"
  description = "Temporal Cloud mTLS client key (PEM)."
}

locals {
  temporal_tls_secret_arns = concat(aws_secretsmanager_secret.temporal_tls_cert[*].arn, aws_secretsmanager_secret.temporal_tls_key[*].arn)
}
