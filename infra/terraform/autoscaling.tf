# Build pools scale on their task queues' backlog. The metric: namespace Kiln, name BuildQueueBacklog,
# dimension Queue = "build.<target id>", value = tasks waiting on that queue (Temporal DescribeTaskQueue's
# approximate backlog count), once a minute. The orchestrator publishes it (its role may PutMetricData in
# namespace Kiln only, iam.tf). Step scaling, not target tracking: pools rest at zero instances, where a
# "backlog per instance" target is undefined; a backlog above zero adds hosts, an empty queue for 15 minutes
# removes one at a time (a running build drains on SIGTERM; Temporal retries one that was cut).

locals {
  scaled_pools = merge(
    { for name, pool in local.cpu_pools : "cpu-${name}" => { asg = aws_autoscaling_group.cpu_worker[name].name, queues = pool.queues, per_step = pool.backlog_per_scale } },
    { for name, pool in local.gpu_pools : "gpu-${name}" => { asg = aws_autoscaling_group.gpu_worker[name].name, queues = pool.queues, per_step = pool.gpus_per_instance } },
  )
}

resource "aws_autoscaling_policy" "scale_out" {
  for_each               = local.scaled_pools
  name                   = "${each.key}-backlog-scale-out"
  autoscaling_group_name = each.value.asg
  policy_type            = "StepScaling"
  adjustment_type        = "ChangeInCapacity"
  step_adjustment {
    metric_interval_lower_bound = 0
    metric_interval_upper_bound = each.value.per_step * 4
    scaling_adjustment          = 1
  }
  step_adjustment {
    metric_interval_lower_bound = each.value.per_step * 4
    scaling_adjustment          = 2
  }
}

resource "aws_autoscaling_policy" "scale_in" {
  for_each               = local.scaled_pools
  name                   = "${each.key}-backlog-scale-in"
  autoscaling_group_name = each.value.asg
  policy_type            = "SimpleScaling"
  adjustment_type        = "ChangeInCapacity"
  scaling_adjustment     = -1
  cooldown               = 600
}

resource "aws_cloudwatch_metric_alarm" "backlog_high" {
  for_each            = local.scaled_pools
  alarm_name          = "${var.name}-${each.key}-backlog-high"
  comparison_operator = "GreaterThanThreshold"
  evaluation_periods  = 2
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_autoscaling_policy.scale_out[each.key].arn]

  metric_query {
    id          = "backlog"
    expression  = "SUM([${join(",", [for i, _ in each.value.queues : "q${i}"])}])"
    label       = "Backlog of ${join(", ", each.value.queues)}"
    return_data = true
  }
  dynamic "metric_query" {
    for_each = each.value.queues
    content {
      id = "q${metric_query.key}"
      metric {
        namespace   = "Kiln"
        metric_name = "BuildQueueBacklog"
        dimensions  = { Queue = metric_query.value }
        period      = 60
        stat        = "Maximum"
      }
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "backlog_empty" {
  for_each            = local.scaled_pools
  alarm_name          = "${var.name}-${each.key}-backlog-empty"
  comparison_operator = "LessThanOrEqualToThreshold"
  evaluation_periods  = 15
  threshold           = 0
  treat_missing_data  = "breaching"
  alarm_actions       = [aws_autoscaling_policy.scale_in[each.key].arn]

  metric_query {
    id          = "backlog"
    expression  = "SUM([${join(",", [for i, _ in each.value.queues : "q${i}"])}])"
    return_data = true
  }
  dynamic "metric_query" {
    for_each = each.value.queues
    content {
      id = "q${metric_query.key}"
      metric {
        namespace   = "Kiln"
        metric_name = "BuildQueueBacklog"
        dimensions  = { Queue = metric_query.value }
        period      = 60
        stat        = "Maximum"
      }
    }
  }
}
