output "gpu_worker_queues" {
  description = "Per GPU family: the Temporal task queues its workers poll, and how many builds one instance runs at once per queue."
  value = {
    for name, pool in local.gpu_pools : name => {
      compute_capability  = pool.compute_capability
      queues              = pool.queues
      builds_per_instance = pool.gpus_per_instance
    }
  }
}

output "cpu_worker_queues" {
  description = "Per x86-64 level: the task queue its CPU build hosts poll."
  value       = { for name, pool in local.cpu_pools : name => pool.queues }
}

output "api_url" {
  description = "Base URL of the API (the ALB)."
  value       = "${var.certificate_arn == "" ? "http" : "https"}://${aws_lb.api.dns_name}"
}

output "bucket" {
  description = "S3 bucket of models and artifacts (S3_BUCKET)."
  value       = aws_s3_bucket.artifacts.bucket
}

output "database_endpoint" {
  description = "RDS endpoint (private)."
  value       = aws_db_instance.main.endpoint
}

output "database_master_secret_arn" {
  description = "Secrets Manager secret of the RDS master user (generated and rotated by RDS)."
  value       = aws_db_instance.main.master_user_secret[0].secret_arn
}

output "temporal_address" {
  description = "TEMPORAL_ADDRESS of every Kiln process."
  value       = local.temporal_address
}

output "secrets_to_fill" {
  description = "Secrets whose value you set after the first apply (aws secretsmanager put-secret-value)."
  value = concat([
    aws_secretsmanager_secret.signing_key.arn,
    aws_secretsmanager_secret.database_url.arn,
    aws_secretsmanager_secret.build_database_url.arn,
    aws_secretsmanager_secret.admin_token.arn,
  ], local.temporal_tls_secret_arns)
}
