# CPU build worker pools: one Auto Scaling group per x86-64 level, like the GPU pools (gpu-workers.tf). A host
# serves exactly its level's queue (build.linux-x86_64-v<N>). Build hosts run with the build role only: no S3
# credentials, no signing key (iam.tf); their one secret is their restricted DATABASE_URL.

locals {
  # Shared by CPU and GPU hosts: fetch the build DB URL with the instance role, start the env file with it.
  build_env_prelude = <<-EOT
    install -d -m 0700 /etc/kiln
    printf 'DATABASE_URL=%s\n' "$(aws secretsmanager get-secret-value --region ${var.region} --secret-id ${aws_secretsmanager_secret.build_database_url.arn} --query SecretString --output text)" > /etc/kiln/worker.env
    chmod 0600 /etc/kiln/worker.env
    ${local.build_tls_prelude}
  EOT
  # temporal_mode = "cloud": the mTLS pair, fetched with the instance role into files only root reads.
  build_tls_prelude = var.temporal_mode != "cloud" ? "" : <<-EOT
    aws secretsmanager get-secret-value --region ${var.region} --secret-id ${aws_secretsmanager_secret.temporal_tls_cert[0].arn} --query SecretString --output text > /etc/kiln/temporal-tls.crt
    aws secretsmanager get-secret-value --region ${var.region} --secret-id ${aws_secretsmanager_secret.temporal_tls_key[0].arn} --query SecretString --output text > /etc/kiln/temporal-tls.key
    chmod 0600 /etc/kiln/temporal-tls.crt /etc/kiln/temporal-tls.key
    printf 'TEMPORAL_TLS_CERT_FILE=/etc/kiln/temporal-tls.crt\nTEMPORAL_TLS_KEY_FILE=/etc/kiln/temporal-tls.key\n' >> /etc/kiln/worker.env
  EOT

  cpu_pools = {
    for name, pool in var.cpu_worker_pools : name => merge(pool, {
      target = "linux-x86_64-${name}"
      queues = ["build.linux-x86_64-${name}"]
      environment = {
        KILN_WORKER_ROLES             = "build"
        KILN_WORKER_TARGETS           = "linux-x86_64-${name}"
        KILN_WORKER_BUILD_CONCURRENCY = tostring(pool.builds_per_host)
        KILN_PYTHON                   = pool.ami_python
        TEMPORAL_ADDRESS              = local.temporal_address
        TEMPORAL_NAMESPACE            = var.temporal_namespace
      }
    })
  }
}

resource "aws_launch_template" "cpu_worker" {
  for_each = local.cpu_pools

  name_prefix   = "${var.name}-build-${each.key}-"
  image_id      = each.value.ami_id
  instance_type = each.value.instance_type

  iam_instance_profile {
    name = aws_iam_instance_profile.build.name
  }
  vpc_security_group_ids = [aws_security_group.build.id]

  # IMDSv2 with one hop: a sandboxed build (its own network namespace) cannot reach the instance credentials.
  metadata_options {
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  user_data = base64encode(<<-EOT
    #!/bin/bash
    set -euo pipefail
    ${local.build_env_prelude}
    cat >> /etc/kiln/worker.env <<'ENV'
    ${join("\n", [for k, v in each.value.environment : "${k}=${v}"])}
    ENV
    systemctl enable --now kiln-worker.service
  EOT
  )

  tag_specifications {
    resource_type = "instance"
    tags = {
      Name             = "${var.name}-build-${each.key}"
      "kiln:role"      = "build"
      "kiln:x86-level" = each.key
    }
  }
}

resource "aws_autoscaling_group" "cpu_worker" {
  for_each = local.cpu_pools

  name                = "${var.name}-build-${each.key}"
  min_size            = each.value.min_size
  max_size            = each.value.max_size
  desired_capacity    = each.value.desired_capacity
  vpc_zone_identifier = aws_subnet.private[*].id

  launch_template {
    id      = aws_launch_template.cpu_worker[each.key].id
    version = "$Latest"
  }
  default_instance_warmup = 300

  # The scaling policies own the size after creation.
  lifecycle {
    ignore_changes = [desired_capacity]
  }

  tag {
    key                 = "kiln:x86-level"
    value               = each.key
    propagate_at_launch = true
  }
}
