# One Auto Scaling group per GPU family. Every instance runs the Kiln worker with the build role only,
# restricted to its pool's targets (KILN_WORKER_TARGETS); at start the worker probes its GPUs with nvidia-smi and
# polls each target queue ("build.<target id>") with one build per GPU of that compute capability.

locals {
  gpu_pools = {
    for name, pool in var.gpu_worker_pools : name => merge(pool, {
      queues = [for t in pool.targets : "build.${t}"]
      environment = {
        KILN_WORKER_ROLES   = "build"
        KILN_WORKER_TARGETS = join(",", pool.targets)
        KILN_PYTHON         = pool.ami_python
        TEMPORAL_ADDRESS    = local.temporal_address
      }
    })
  }
  gpu_user_data = {
    for name, pool in local.gpu_pools :
    name => <<-EOT
      #!/bin/bash
      set -euo pipefail
      ${local.build_env_prelude}
      cat >> /etc/kiln/worker.env <<'ENV'
      ${join("\n", [for k, v in pool.environment : "${k}=${v}"])}
      ENV
      # The NVIDIA device nodes must exist before the worker's first (sandboxed) build: nvidia-smi creates them.
      nvidia-smi --query-gpu=name,compute_cap,driver_version,index --format=csv,noheader
      systemctl enable --now kiln-worker.service
    EOT
  }
}

resource "aws_launch_template" "gpu_worker" {
  for_each = local.gpu_pools

  name_prefix   = "kiln-build-${each.key}-"
  image_id      = each.value.ami_id
  instance_type = each.value.instance_type

  iam_instance_profile {
    name = aws_iam_instance_profile.build.name
  }
  vpc_security_group_ids = [aws_security_group.build.id]

  metadata_options {
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  user_data = base64encode(local.gpu_user_data[each.key])

  tag_specifications {
    resource_type = "instance"
    tags = {
      Name                      = "kiln-build-${each.key}"
      "kiln:role"               = "build"
      "kiln:gpu-family"         = each.key
      "kiln:compute-capability" = each.value.compute_capability
    }
  }
}

resource "aws_autoscaling_group" "gpu_worker" {
  for_each = local.gpu_pools

  name                = "kiln-build-${each.key}"
  min_size            = each.value.min_size
  max_size            = each.value.max_size
  desired_capacity    = each.value.desired_capacity
  vpc_zone_identifier = aws_subnet.private[*].id

  launch_template {
    id      = aws_launch_template.gpu_worker[each.key].id
    version = "$Latest"
  }

  # A build that is running when an instance is scaled in is retried elsewhere after its heartbeat stops; the
  # worker drains on SIGTERM (30 s grace), so give it that long.
  default_instance_warmup = 300

  lifecycle {
    ignore_changes = [desired_capacity]
  }

  tag {
    key                 = "kiln:gpu-family"
    value               = each.key
    propagate_at_launch = true
  }
}
