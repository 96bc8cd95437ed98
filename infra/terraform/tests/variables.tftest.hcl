# Invalid variables are refused at plan time.

mock_provider "aws" {
  override_during = plan
  mock_resource "aws_db_instance" {
    defaults = {
      master_user_secret = [{ secret_arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:rds-master", kms_key_id = "k", secret_status = "active" }]
    }
  }
  mock_data "aws_iam_policy_document" {
    defaults = {
      json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}"
    }
  }
}

run "temporal_mode_must_be_known" {
  command = plan
  variables {
    temporal_mode = "on_prem"
  }
  expect_failures = [var.temporal_mode]
}

run "cloud_needs_an_address" {
  command = plan
  variables {
    temporal_mode = "cloud"
  }
  expect_failures = [var.temporal_cloud_address]
}

run "cpu_pool_named_after_its_level" {
  command = plan
  variables {
    cpu_worker_pools = { v5 = { instance_type = "c7i.2xlarge" } }
  }
  expect_failures = [var.cpu_worker_pools]
}

run "v4_pool_needs_avx512" {
  command = plan
  variables {
    cpu_worker_pools = { v4 = { instance_type = "c6a.2xlarge" } }
  }
  expect_failures = [var.cpu_worker_pools]
}

run "gpu_pool_serves_only_its_family" {
  command = plan
  variables {
    gpu_worker_pools = { sm90 = { compute_capability = "9.0", instance_type = "p5.48xlarge", gpus_per_instance = 8, targets = ["linux-x86_64-cuda-sm80"] } }
  }
  expect_failures = [var.gpu_worker_pools]
}

run "bucket_name_must_be_valid" {
  command = plan
  variables {
    bucket_name = "Kiln_Artifacts"
  }
  expect_failures = [var.bucket_name]
}

run "one_availability_zone_is_not_enough" {
  command = plan
  variables {
    availability_zones = ["us-east-1a"]
  }
  expect_failures = [var.availability_zones]
}

run "valid_defaults_plan" {
  command = plan
  assert {
    condition     = length(aws_autoscaling_group.cpu_worker) == 3 && length(aws_autoscaling_group.gpu_worker) == 4
    error_message = "The defaults make three CPU pools (v2, v3, v4) and four GPU pools."
  }
  assert {
    condition     = length(aws_cloudwatch_metric_alarm.backlog_high) == 7 && alltrue([for a in aws_cloudwatch_metric_alarm.backlog_high : anytrue([for q in a.metric_query : try(q.metric[0].metric_name == "BuildQueueBacklog" && q.metric[0].namespace == "Kiln", false)])])
    error_message = "Every pool scales on Kiln/BuildQueueBacklog."
  }
}
