# temporal_mode switches between Temporal Cloud (address + mTLS secrets) and a self-hosted server on ECS.

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

run "self_hosted_runs_temporal_on_ecs" {
  command = plan
  variables {
    temporal_mode = "self_hosted"
  }

  assert {
    condition     = length(aws_ecs_service.temporal) == 1 && length(aws_security_group.temporal) == 1
    error_message = "self_hosted must run a Temporal service on ECS."
  }
  assert {
    condition     = length(aws_secretsmanager_secret.temporal_tls_cert) == 0 && length(aws_secretsmanager_secret.temporal_tls_key) == 0
    error_message = "self_hosted needs no Temporal Cloud certificates."
  }
  assert {
    condition     = output.temporal_address == "temporal.kiln.internal:7233"
    error_message = "self_hosted workers dial the service-discovery name."
  }
}

run "cloud_uses_address_and_mtls_secrets" {
  command = plan
  variables {
    temporal_mode          = "cloud"
    temporal_cloud_address = "kiln.a1b2c.tmprl.cloud:7233"
  }

  assert {
    condition     = length(aws_ecs_service.temporal) == 0 && length(aws_service_discovery_service.temporal) == 0
    error_message = "cloud must not run a Temporal server."
  }
  assert {
    condition     = length(aws_secretsmanager_secret.temporal_tls_cert) == 1 && length(aws_secretsmanager_secret.temporal_tls_key) == 1
    error_message = "cloud needs the mTLS certificate and key secrets."
  }
  assert {
    condition     = output.temporal_address == "kiln.a1b2c.tmprl.cloud:7233"
    error_message = "cloud workers dial temporal_cloud_address."
  }
  assert {
    condition     = contains([for e in jsondecode(aws_ecs_task_definition.orchestrator.container_definitions)[0].environment : e.value if e.name == "TEMPORAL_ADDRESS"], "kiln.a1b2c.tmprl.cloud:7233")
    error_message = "The orchestrator task must get the Cloud address."
  }
  assert {
    condition     = contains([for e in jsondecode(aws_ecs_task_definition.api.container_definitions)[0].secrets : e.name], "TEMPORAL_TLS_CERT_PEM") && contains([for e in jsondecode(aws_ecs_task_definition.orchestrator.container_definitions)[0].secrets : e.name], "TEMPORAL_TLS_KEY_PEM")
    error_message = "cloud: the API and the orchestrator get the mTLS pair from Secrets Manager."
  }
  assert {
    condition     = strcontains(jsondecode(aws_ecs_task_definition.api.container_definitions)[0].command[2], "TEMPORAL_TLS_CERT_FILE=/tmp/temporal-tls.crt")
    error_message = "cloud: the API's command writes the pair to the files it dials Temporal with."
  }
  assert {
    condition     = strcontains(base64decode(aws_launch_template.cpu_worker["v3"].user_data), "TEMPORAL_TLS_KEY_FILE=/etc/kiln/temporal-tls.key")
    error_message = "cloud: build hosts write the pair to files and name them in worker.env."
  }
}
