# Security properties of the plan (docs/security.md). The AWS provider is mocked: no credentials, no network.
# mock_provider fills computed attributes (ARNs, ids) with fake values; the RDS master secret is a nested
# computed block, so it gets an explicit default.

mock_provider "aws" {
  override_during = plan
  mock_resource "aws_db_instance" {
    defaults = {
      master_user_secret = [{ secret_arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:rds-master", kms_key_id = "k", secret_status = "active" }]
    }
  }
  mock_resource "aws_secretsmanager_secret" {
    defaults = {
      arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:mock"
    }
  }
  mock_data "aws_iam_policy_document" {
    defaults = {
      json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}"
    }
  }
}

# Distinct ARNs per secret, so "which role reads which secret" is a real question.
override_resource {
  override_during = plan
  target          = aws_secretsmanager_secret.signing_key
  values          = { arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:kiln/signing-key" }
}
override_resource {
  override_during = plan
  target          = aws_secretsmanager_secret.build_database_url
  values          = { arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:kiln/build-database-url" }
}
override_resource {
  override_during = plan
  target          = aws_secretsmanager_secret.database_url
  values          = { arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:kiln/database-url" }
}
override_resource {
  override_during = plan
  target          = aws_secretsmanager_secret.admin_token
  values          = { arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:kiln/admin-token" }
}
override_resource {
  override_during = plan
  target          = aws_s3_bucket.artifacts
  values          = { arn = "arn:aws:s3:::kiln-artifacts-example" }
}

run "bucket_is_private_encrypted_versioned" {
  command = plan

  assert {
    condition = alltrue([
      aws_s3_bucket_public_access_block.artifacts.block_public_acls,
      aws_s3_bucket_public_access_block.artifacts.block_public_policy,
      aws_s3_bucket_public_access_block.artifacts.ignore_public_acls,
      aws_s3_bucket_public_access_block.artifacts.restrict_public_buckets,
    ])
    error_message = "All four public access blocks must be on."
  }
  assert {
    condition     = one(one(aws_s3_bucket_server_side_encryption_configuration.artifacts.rule).apply_server_side_encryption_by_default).sse_algorithm == "aws:kms"
    error_message = "The bucket must be encrypted with SSE-KMS by default."
  }
  assert {
    condition     = aws_s3_bucket_versioning.artifacts.versioning_configuration[0].status == "Enabled"
    error_message = "Versioning must be enabled."
  }
  assert {
    condition = anytrue([
      for r in aws_s3_bucket_lifecycle_configuration.artifacts.rule :
      r.status == "Enabled" && try(r.abort_incomplete_multipart_upload[0].days_after_initiation <= 7, false)
    ])
    error_message = "An enabled lifecycle rule must abort incomplete multipart uploads within a week."
  }
  assert {
    condition     = jsondecode(aws_s3_bucket_policy.artifacts.policy).Statement[0].Effect == "Deny" && jsondecode(aws_s3_bucket_policy.artifacts.policy).Statement[0].Condition.Bool["aws:SecureTransport"] == "false"
    error_message = "The bucket policy must deny plain-HTTP access."
  }
}

run "build_hosts_hold_no_authority" {
  command = plan

  assert {
    condition = alltrue(flatten([
      for s in jsondecode(aws_iam_role_policy.build.policy).Statement : [
        for a in flatten([s.Action]) : !startswith(lower(a), "s3:") && a != "*"
      ]
    ]))
    error_message = "The build host role must have no s3: action (it uses presigned URLs)."
  }
  assert {
    condition = alltrue(flatten([
      for s in jsondecode(aws_iam_role_policy.build.policy).Statement :
      [for r in flatten([s.Resource]) : r != aws_secretsmanager_secret.signing_key.arn && r != "*"]
    ]))
    error_message = "The build host role must not reach the signing key."
  }
  assert {
    condition     = length(aws_iam_role_policy_attachment.build_ssm.policy_arn) > 0 && !strcontains(aws_iam_role_policy_attachment.build_ssm.policy_arn, "S3")
    error_message = "The build host's managed policy must not be an S3 policy."
  }
  assert {
    condition = alltrue([
      for lt in merge(aws_launch_template.cpu_worker, aws_launch_template.gpu_worker) :
      lt.metadata_options[0].http_tokens == "required" && lt.metadata_options[0].http_put_response_hop_limit == 1
    ])
    error_message = "Build hosts need IMDSv2 with hop limit 1 (a sandboxed build must not reach instance credentials)."
  }
}

run "orchestrator_alone_reads_signing_key" {
  command = plan

  assert {
    condition = anytrue([
      for s in jsondecode(aws_iam_role_policy.orchestrator.policy).Statement :
      s.Effect == "Allow" && contains(flatten([s.Action]), "secretsmanager:GetSecretValue") && contains(flatten([s.Resource]), aws_secretsmanager_secret.signing_key.arn)
    ])
    error_message = "The orchestrator must be able to read the signing key."
  }
  assert {
    condition = !anytrue([
      for s in jsondecode(aws_iam_role_policy.api.policy).Statement :
      contains(flatten([s.Resource]), aws_secretsmanager_secret.signing_key.arn)
    ])
    error_message = "The API must not read the signing key."
  }
  assert {
    condition = alltrue([
      for p in [aws_iam_role_policy.api.policy, aws_iam_role_policy.orchestrator.policy] : anytrue([
        for s in jsondecode(p).Statement :
        contains(flatten([s.Action]), "s3:PutObject") && contains(flatten([s.Action]), "s3:GetObject") && contains(flatten([s.Resource]), "arn:aws:s3:::kiln-artifacts-example/*")
      ])
    ])
    error_message = "The API and the orchestrator must read and write the bucket."
  }
  assert {
    condition     = !strcontains(jsonencode(jsondecode(aws_ecs_task_definition.api.container_definitions)[0].secrets), aws_secretsmanager_secret.signing_key.arn)
    error_message = "The API task must not be given the signing key."
  }
}

run "database_is_private" {
  command = plan

  assert {
    condition     = aws_db_instance.main.publicly_accessible == false
    error_message = "RDS must not be publicly accessible."
  }
  assert {
    condition     = aws_db_instance.main.storage_encrypted
    error_message = "RDS storage must be encrypted."
  }
  assert {
    condition     = aws_db_instance.main.manage_master_user_password && aws_db_instance.main.password == null
    error_message = "The master password must be managed by RDS in Secrets Manager, never given to Terraform."
  }
  assert {
    condition     = length(aws_security_group.db.ingress) == 1 && alltrue([for i in aws_security_group.db.ingress : length(coalesce(i.cidr_blocks, [])) == 0])
    error_message = "The database accepts connections from Kiln's security groups only, never from a CIDR."
  }
}
