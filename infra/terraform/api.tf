# API and orchestrator on ECS Fargate (decisions.md): both are stateless Node processes of one image, so
# Fargate gives rolling deploys and no AMI to patch. Build hosts are EC2 (workers.tf): the build sandbox needs
# user namespaces, delegated cgroups and GPUs, which Fargate does not offer.

locals {
  temporal_address = var.temporal_mode == "cloud" ? var.temporal_cloud_address : "temporal.${var.name}.internal:7233"
  common_env = [
    { name = "S3_BUCKET", value = aws_s3_bucket.artifacts.bucket },
    { name = "S3_REGION", value = var.region },
    { name = "TEMPORAL_ADDRESS", value = local.temporal_address },
    { name = "TEMPORAL_NAMESPACE", value = var.temporal_namespace },
  ]
  # temporal_mode = "cloud": the mTLS pair comes from Secrets Manager as env, and the container's command writes it to
  # files only the process reads (TEMPORAL_TLS_CERT_FILE / _KEY_FILE), then drops the env copies.
  temporal_tls_secrets = var.temporal_mode == "cloud" ? [
    { name = "TEMPORAL_TLS_CERT_PEM", valueFrom = aws_secretsmanager_secret.temporal_tls_cert[0].arn },
    { name = "TEMPORAL_TLS_KEY_PEM", valueFrom = aws_secretsmanager_secret.temporal_tls_key[0].arn },
  ] : []
  temporal_tls_prelude = var.temporal_mode == "cloud" ? join(" && ", [
    "printf '%s' \"$TEMPORAL_TLS_CERT_PEM\" > /tmp/temporal-tls.crt",
    "printf '%s' \"$TEMPORAL_TLS_KEY_PEM\" > /tmp/temporal-tls.key",
    "unset TEMPORAL_TLS_CERT_PEM TEMPORAL_TLS_KEY_PEM",
    "export TEMPORAL_TLS_CERT_FILE=/tmp/temporal-tls.crt TEMPORAL_TLS_KEY_FILE=/tmp/temporal-tls.key",
    "",
  ]) : ""
}

resource "aws_ecs_cluster" "main" {
  name = var.name
  setting {
    name  = "containerInsights"
    value = "enabled"
  }
}

resource "aws_cloudwatch_log_group" "ecs" {
  name              = "/ecs/${var.name}"
  retention_in_days = 30
}

resource "aws_lb" "api" {
  name                       = "${var.name}-api"
  load_balancer_type         = "application"
  internal                   = false
  subnets                    = aws_subnet.public[*].id
  security_groups            = [aws_security_group.alb.id]
  drop_invalid_header_fields = true
}

resource "aws_lb_target_group" "api" {
  name        = "${var.name}-api"
  port        = 3000
  protocol    = "HTTP"
  target_type = "ip"
  vpc_id      = aws_vpc.main.id
  health_check {
    path    = "/v1/health"
    matcher = "200"
  }
}

resource "aws_lb_listener" "api" {
  load_balancer_arn = aws_lb.api.arn
  port              = var.certificate_arn == "" ? 80 : 443
  protocol          = var.certificate_arn == "" ? "HTTP" : "HTTPS"
  certificate_arn   = var.certificate_arn == "" ? null : var.certificate_arn
  ssl_policy        = var.certificate_arn == "" ? null : "ELBSecurityPolicy-TLS13-1-2-2021-06"
  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.api.arn
  }
}

resource "aws_ecs_task_definition" "api" {
  family                   = "${var.name}-api"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = 1024
  memory                   = 2048
  execution_role_arn       = aws_iam_role.ecs_execution.arn
  task_role_arn            = aws_iam_role.api.arn
  container_definitions = jsonencode([{
    name         = "api"
    image        = var.api_image
    command      = ["sh", "-c", "umask 077 && ${local.temporal_tls_prelude}exec node dist/apps/api/src/main.js"]
    essential    = true
    portMappings = [{ containerPort = 3000 }]
    environment  = concat(local.common_env, [{ name = "KILN_API_PORT", value = "3000" }, { name = "KILN_API_HOST", value = "0.0.0.0" }])
    secrets = concat([
      { name = "DATABASE_URL", valueFrom = aws_secretsmanager_secret.database_url.arn },
      { name = "KILN_ADMIN_TOKEN", valueFrom = aws_secretsmanager_secret.admin_token.arn },
    ], local.temporal_tls_secrets)
    logConfiguration = {
      logDriver = "awslogs"
      options   = { "awslogs-group" = aws_cloudwatch_log_group.ecs.name, "awslogs-region" = var.region, "awslogs-stream-prefix" = "api" }
    }
  }])
}

resource "aws_ecs_service" "api" {
  name            = "api"
  cluster         = aws_ecs_cluster.main.id
  task_definition = aws_ecs_task_definition.api.arn
  desired_count   = var.api_desired_count
  launch_type     = "FARGATE"
  network_configuration {
    subnets          = aws_subnet.private[*].id
    security_groups  = [aws_security_group.api.id]
    assign_public_ip = false
  }
  load_balancer {
    target_group_arn = aws_lb_target_group.api.arn
    container_name   = "api"
    container_port   = 3000
  }
  depends_on = [aws_lb_listener.api]
}

# The orchestrator: the worker with role orchestrator (S3, signing key, artifact rows). The signing key arrives
# as an environment variable and the entrypoint writes it to KILN_SIGNING_KEY_FILE (tmpfs) before starting.
resource "aws_ecs_task_definition" "orchestrator" {
  family                   = "${var.name}-orchestrator"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = 1024
  memory                   = 2048
  execution_role_arn       = aws_iam_role.ecs_execution.arn
  task_role_arn            = aws_iam_role.orchestrator.arn
  container_definitions = jsonencode([{
    name      = "orchestrator"
    image     = var.api_image
    command   = ["sh", "-c", "umask 077 && printf '%s' \"$KILN_SIGNING_KEY_PEM\" > /tmp/signing-key.pem && unset KILN_SIGNING_KEY_PEM && ${local.temporal_tls_prelude}exec node dist/apps/worker/src/main.js"]
    essential = true
    environment = concat(local.common_env, [
      { name = "KILN_WORKER_ROLES", value = "orchestrator" },
      { name = "KILN_SIGNING_KEY_FILE", value = "/tmp/signing-key.pem" },
      # The kiln-queue-backlog schedule publishes BuildQueueBacklog here: the build pools scale on it (autoscaling.tf).
      { name = "KILN_CLOUDWATCH_NAMESPACE", value = "Kiln" },
    ])
    secrets = concat([
      { name = "DATABASE_URL", valueFrom = aws_secretsmanager_secret.database_url.arn },
      { name = "KILN_SIGNING_KEY_PEM", valueFrom = aws_secretsmanager_secret.signing_key.arn },
    ], local.temporal_tls_secrets)
    logConfiguration = {
      logDriver = "awslogs"
      options   = { "awslogs-group" = aws_cloudwatch_log_group.ecs.name, "awslogs-region" = var.region, "awslogs-stream-prefix" = "orchestrator" }
    }
  }])
}

resource "aws_ecs_service" "orchestrator" {
  name            = "orchestrator"
  cluster         = aws_ecs_cluster.main.id
  task_definition = aws_ecs_task_definition.orchestrator.arn
  desired_count   = var.orchestrator_desired_count
  launch_type     = "FARGATE"
  network_configuration {
    subnets          = aws_subnet.private[*].id
    security_groups  = [aws_security_group.orchestrator.id]
    assign_public_ip = false
  }
}
