# temporal_mode = "cloud": nothing runs here; the workers dial temporal_cloud_address with the mTLS pair from
# secrets.tf. temporal_mode = "self_hosted": one Temporal server task on ECS, its schema in the RDS instance
# (auto-setup creates the temporal and temporal_visibility databases), reachable as temporal.<name>.internal.

locals {
  temporal_self_hosted = var.temporal_mode == "self_hosted"
}

resource "aws_service_discovery_private_dns_namespace" "internal" {
  count = local.temporal_self_hosted ? 1 : 0
  name  = "${var.name}.internal"
  vpc   = aws_vpc.main.id
}

resource "aws_service_discovery_service" "temporal" {
  count = local.temporal_self_hosted ? 1 : 0
  name  = "temporal"
  dns_config {
    namespace_id = aws_service_discovery_private_dns_namespace.internal[0].id
    dns_records {
      type = "A"
      ttl  = 10
    }
  }
}

resource "aws_ecs_task_definition" "temporal" {
  count                    = local.temporal_self_hosted ? 1 : 0
  family                   = "${var.name}-temporal"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = 1024
  memory                   = 2048
  execution_role_arn       = aws_iam_role.ecs_execution.arn
  container_definitions = jsonencode([{
    name         = "temporal"
    image        = var.temporal_image
    essential    = true
    portMappings = [{ containerPort = 7233 }]
    environment = [
      { name = "DB", value = "postgres12" },
      { name = "DB_PORT", value = "5432" },
      { name = "POSTGRES_SEEDS", value = aws_db_instance.main.address },
      { name = "POSTGRES_USER", value = aws_db_instance.main.username },
      { name = "SQL_TLS_ENABLED", value = "true" },
    ]
    secrets = [
      { name = "POSTGRES_PWD", valueFrom = "${aws_db_instance.main.master_user_secret[0].secret_arn}:password::" },
    ]
    logConfiguration = {
      logDriver = "awslogs"
      options   = { "awslogs-group" = aws_cloudwatch_log_group.ecs.name, "awslogs-region" = var.region, "awslogs-stream-prefix" = "temporal" }
    }
  }])
}

resource "aws_ecs_service" "temporal" {
  count           = local.temporal_self_hosted ? 1 : 0
  name            = "temporal"
  cluster         = aws_ecs_cluster.main.id
  task_definition = aws_ecs_task_definition.temporal[0].arn
  desired_count   = 1
  launch_type     = "FARGATE"
  network_configuration {
    subnets          = aws_subnet.private[*].id
    security_groups  = [aws_security_group.temporal[0].id]
    assign_public_ip = false
  }
  service_registries {
    registry_arn = aws_service_discovery_service.temporal[0].arn
  }
}
