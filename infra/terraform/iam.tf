# Least privilege per role (docs/security.md, "Build hosts hold no authority"):
#   api           read/write the bucket; its DB URL and admin token
#   orchestrator  read/write the bucket; the signing key (it alone); its DB URL; publish Kiln/* metrics
#   build hosts   NO S3 (presigned URLs from their workflow), NO signing key; their own restricted DB URL
# Policies are built as plain JSON here (not aws_iam_policy_document) so the tests can read them at plan time.

locals {
  bucket_rw_statement = {
    Sid      = "BucketReadWrite"
    Effect   = "Allow"
    Action   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"]
    Resource = ["${aws_s3_bucket.artifacts.arn}/*"]
  }
  bucket_list_statement = {
    Sid      = "BucketList"
    Effect   = "Allow"
    Action   = ["s3:ListBucket", "s3:ListBucketMultipartUploads"]
    Resource = [aws_s3_bucket.artifacts.arn]
  }
  temporal_tls_statements = length(local.temporal_tls_secret_arns) == 0 ? [] : [{
    Sid      = "TemporalTls"
    Effect   = "Allow"
    Action   = ["secretsmanager:GetSecretValue"]
    Resource = local.temporal_tls_secret_arns
  }]

  api_policy = {
    Version = "2012-10-17"
    Statement = concat([local.bucket_rw_statement, local.bucket_list_statement, {
      Sid      = "Secrets"
      Effect   = "Allow"
      Action   = ["secretsmanager:GetSecretValue"]
      Resource = [aws_secretsmanager_secret.database_url.arn, aws_secretsmanager_secret.admin_token.arn]
    }], local.temporal_tls_statements)
  }

  orchestrator_policy = {
    Version = "2012-10-17"
    Statement = concat([local.bucket_rw_statement, local.bucket_list_statement, {
      Sid      = "SigningKey"
      Effect   = "Allow"
      Action   = ["secretsmanager:GetSecretValue"]
      Resource = [aws_secretsmanager_secret.signing_key.arn]
      }, {
      Sid      = "Secrets"
      Effect   = "Allow"
      Action   = ["secretsmanager:GetSecretValue"]
      Resource = [aws_secretsmanager_secret.database_url.arn]
      }, {
      # The backlog metric that scales the build pools (autoscaling.tf).
      Sid       = "BacklogMetric"
      Effect    = "Allow"
      Action    = ["cloudwatch:PutMetricData"]
      Resource  = ["*"]
      Condition = { StringEquals = { "cloudwatch:namespace" = "Kiln" } }
    }], local.temporal_tls_statements)
  }

  build_policy = {
    Version = "2012-10-17"
    Statement = concat([{
      Sid      = "BuildDatabaseUrl"
      Effect   = "Allow"
      Action   = ["secretsmanager:GetSecretValue"]
      Resource = [aws_secretsmanager_secret.build_database_url.arn]
    }], local.temporal_tls_statements)
  }
}

data "aws_iam_policy_document" "ecs_tasks_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
  }
}

data "aws_iam_policy_document" "ec2_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "api" {
  name               = "${var.name}-api"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

resource "aws_iam_role_policy" "api" {
  name   = "kiln-api"
  role   = aws_iam_role.api.id
  policy = jsonencode(local.api_policy)
}

resource "aws_iam_role" "orchestrator" {
  name               = "${var.name}-orchestrator"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

resource "aws_iam_role_policy" "orchestrator" {
  name   = "kiln-orchestrator"
  role   = aws_iam_role.orchestrator.id
  policy = jsonencode(local.orchestrator_policy)
}

resource "aws_iam_role" "build" {
  name               = "${var.name}-build"
  assume_role_policy = data.aws_iam_policy_document.ec2_assume.json
}

resource "aws_iam_role_policy" "build" {
  name   = "kiln-build"
  role   = aws_iam_role.build.id
  policy = jsonencode(local.build_policy)
}

# SSM for shell access without SSH keys or open ports.
resource "aws_iam_role_policy_attachment" "build_ssm" {
  role       = aws_iam_role.build.name
  policy_arn = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"
}

resource "aws_iam_instance_profile" "build" {
  name = "${var.name}-build"
  role = aws_iam_role.build.name
}

# The ECS task execution role pulls images, writes logs and injects each task's secrets; it is ECS's, not the
# application's (the app's code runs with the task roles above).
resource "aws_iam_role" "ecs_execution" {
  name               = "${var.name}-ecs-execution"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

resource "aws_iam_role_policy_attachment" "ecs_execution" {
  role       = aws_iam_role.ecs_execution.name
  policy_arn = "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
}

resource "aws_iam_role_policy" "ecs_execution_secrets" {
  name = "inject-secrets"
  role = aws_iam_role.ecs_execution.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect = "Allow"
      Action = ["secretsmanager:GetSecretValue"]
      Resource = concat([
        aws_secretsmanager_secret.signing_key.arn,
        aws_secretsmanager_secret.database_url.arn,
        aws_secretsmanager_secret.admin_token.arn,
        aws_db_instance.main.master_user_secret[0].secret_arn,
      ], local.temporal_tls_secret_arns)
    }]
  })
}
