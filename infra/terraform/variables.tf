variable "region" {
  description = "AWS region of the whole deployment."
  type        = string
  default     = "us-east-1"
}

variable "name" {
  description = "Prefix of every resource name (one deployment per name and region)."
  type        = string
  default     = "kiln"
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,20}$", var.name))
    error_message = "name must be 2-21 characters: lowercase letters, digits and '-', starting with a letter."
  }
}

variable "vpc_cidr" {
  description = "CIDR block of the VPC; public and private subnets are /20s carved from it, one of each per AZ."
  type        = string
  default     = "10.40.0.0/16"
  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0)) && tonumber(split("/", var.vpc_cidr)[1]) <= 18
    error_message = "vpc_cidr must be an IPv4 CIDR block of /18 or larger."
  }
}

variable "availability_zones" {
  description = "Availability zones (two or three) of the subnets."
  type        = list(string)
  default     = ["us-east-1a", "us-east-1b"]
  validation {
    condition     = length(var.availability_zones) >= 2 && length(var.availability_zones) <= 3
    error_message = "Give two or three availability zones (RDS and the ALB need two)."
  }
}

variable "bucket_name" {
  description = "Name of the S3 bucket of models, artifacts and manifests (globally unique)."
  type        = string
  default     = "kiln-artifacts-example"
  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.bucket_name))
    error_message = "bucket_name must be a valid S3 bucket name (3-63 lowercase letters, digits, '.', '-')."
  }
}

variable "noncurrent_version_days" {
  description = "Days a replaced or deleted object version is kept before S3 expires it (versioning guards against a bad delete)."
  type        = number
  default     = 30
  validation {
    condition     = var.noncurrent_version_days >= 1
    error_message = "noncurrent_version_days must be at least 1."
  }
}

variable "db_instance_class" {
  description = "RDS instance class of PostgreSQL."
  type        = string
  default     = "db.t4g.medium"
}

variable "db_allocated_storage_gb" {
  description = "Initial storage of the RDS instance (GiB); storage autoscaling goes up to 4x."
  type        = number
  default     = 50
  validation {
    condition     = var.db_allocated_storage_gb >= 20
    error_message = "db_allocated_storage_gb must be at least 20."
  }
}

variable "api_image" {
  description = "Container image of Kiln (apps/api and apps/worker share it; the command picks the process)."
  type        = string
  default     = "ghcr.io/example/kiln:latest"
}

variable "api_desired_count" {
  description = "Number of API tasks (stateless, behind the ALB)."
  type        = number
  default     = 2
  validation {
    condition     = var.api_desired_count >= 1
    error_message = "api_desired_count must be at least 1."
  }
}

variable "orchestrator_desired_count" {
  description = "Number of orchestrator tasks (Temporal spreads workflows over them)."
  type        = number
  default     = 1
  validation {
    condition     = var.orchestrator_desired_count >= 1
    error_message = "orchestrator_desired_count must be at least 1."
  }
}

variable "certificate_arn" {
  description = "ACM certificate of the ALB's HTTPS listener; empty: plain HTTP on port 80 (for a first try only)."
  type        = string
  default     = ""
  validation {
    condition     = var.certificate_arn == "" || startswith(var.certificate_arn, "arn:aws:acm:")
    error_message = "certificate_arn must be empty or an ACM certificate ARN."
  }
}

variable "temporal_mode" {
  description = "\"cloud\": Temporal Cloud at temporal_cloud_address with mTLS; \"self_hosted\": Temporal runs on ECS with its database on the RDS instance."
  type        = string
  default     = "self_hosted"
  validation {
    condition     = contains(["cloud", "self_hosted"], var.temporal_mode)
    error_message = "temporal_mode must be \"cloud\" or \"self_hosted\"."
  }
}

variable "temporal_cloud_address" {
  description = "host:port of the Temporal Cloud namespace endpoint (temporal_mode = \"cloud\" only)."
  type        = string
  default     = ""
  validation {
    condition     = var.temporal_mode == "cloud" ? can(regex("^[A-Za-z0-9.-]+:[0-9]+$", var.temporal_cloud_address)) : var.temporal_cloud_address == ""
    error_message = "temporal_cloud_address is host:port with temporal_mode = \"cloud\", and empty with \"self_hosted\"."
  }
}

variable "temporal_namespace" {
  description = "Temporal namespace (TEMPORAL_NAMESPACE)."
  type        = string
  default     = "default"
}

variable "temporal_image" {
  description = "Image of the self-hosted Temporal server (auto-setup creates its schema in the RDS instance)."
  type        = string
  default     = "temporalio/auto-setup:1.27.2"
}

variable "cpu_worker_pools" {
  description = <<-EOT
    One CPU build worker pool per x86-64 level: the level's queue build.linux-x86_64-v<N> is served only by
    hosts whose CPU has that ISA level (the driver checks the artifact against the host). v2: any x86-64 since
    Nehalem (c5 has it too, but a v2 pool on v3 hardware is fine: artifacts are built with -march=x86-64-v2);
    v3 (AVX2): AMD Zen (c6a); v4 (AVX-512): Intel Ice Lake and later (c6i).
  EOT
  type = map(object({
    instance_type     = string
    builds_per_host   = optional(number, 2)
    ami_id            = optional(string, "")
    ami_python        = optional(string, "/opt/kiln/venv-cpu/bin/python")
    min_size          = optional(number, 0)
    max_size          = optional(number, 4)
    desired_capacity  = optional(number, 0)
    backlog_per_scale = optional(number, 4)
  }))
  default = {
    v2 = { instance_type = "c5.2xlarge" }  # Intel Skylake/Cascade Lake (has v2..v4)
    v3 = { instance_type = "c6a.2xlarge" } # AMD Zen 3 (AVX2, no AVX-512)
    v4 = { instance_type = "c6i.2xlarge" } # Intel Ice Lake (AVX-512)
  }
  validation {
    condition     = alltrue([for name, _ in var.cpu_worker_pools : contains(["v2", "v3", "v4"], name)])
    error_message = "CPU pools are named after their x86-64 level: v2, v3 or v4."
  }
  validation {
    condition = alltrue([
      for name, pool in var.cpu_worker_pools :
      name != "v4" || can(regex("^(c6i|c7i|m6i|m7i|r6i|r7i|c5|m5|c6in|c7a|m7a)[a-z]*\\.", pool.instance_type))
    ])
    error_message = "The v4 pool needs an instance family with AVX-512 (e.g. c6i, c7i, m6i, c7a)."
  }
  validation {
    condition     = alltrue([for pool in var.cpu_worker_pools : pool.builds_per_host >= 1 && pool.min_size <= pool.max_size && pool.backlog_per_scale >= 1])
    error_message = "builds_per_host and backlog_per_scale must be at least 1 and min_size at most max_size."
  }
}
variable "gpu_worker_pools" {
  description = <<-EOT
    One build worker pool per GPU family (compute capability). AOTInductor compiles the Triton kernels for the
    GPU it runs on, so a target linux-x86_64-cuda-smXY is built (and verified) only on a GPU of compute
    capability X.Y: each pool serves exactly the targets of its capability. A worker polls each of them with one
    build per GPU (gpus_per_instance), each build pinned to one GPU.

    The AMI needs the NVIDIA driver, the CUDA toolkit headers (/usr/local/cuda), the system g++ and a Python venv
    with exactly the recipes' torch build (linux-x86_64-cuda-*: 2.11.0+cu130) at ami_python; libcuda must be
    found by the dynamic loader (ldconfig): the build sandbox passes no LD_LIBRARY_PATH.

    The host CPU matters too: on torch 2.11 the host-side code of a GPU artifact is compiled for the build
    host's CPU (-march=native) and the manifest requires the x86-64 level found in it. An Intel host with AVX-512
    (p4d: Cascade Lake) yields artifacts that need x86-64-v4; an AMD Zen 3 host (p5: Milan) yields v3.
  EOT
  type = map(object({
    compute_capability = string
    instance_type      = string
    gpus_per_instance  = number
    targets            = list(string)
    ami_id             = optional(string, "")
    ami_python         = optional(string, "/opt/kiln/venv-cu130/bin/python")
    min_size           = optional(number, 0)
    max_size           = optional(number, 2)
    desired_capacity   = optional(number, 0)
  }))
  default = {
    sm80 = {
      compute_capability = "8.0"
      instance_type      = "p4d.24xlarge" # 8x A100 40GB, Intel Cascade Lake (AVX-512)
      gpus_per_instance  = 8
      targets            = ["linux-x86_64-cuda-sm80"]
    }
    sm86 = {
      compute_capability = "8.6"
      instance_type      = "g5.12xlarge" # 4x A10G, AMD EPYC 7R32 (AVX2)
      gpus_per_instance  = 4
      targets            = ["linux-x86_64-cuda-sm86"]
    }
    sm89 = {
      compute_capability = "8.9"
      instance_type      = "g6.12xlarge" # 4x L4, AMD EPYC 7R13 (AVX2)
      gpus_per_instance  = 4
      targets            = ["linux-x86_64-cuda-sm89"]
    }
    sm90 = {
      compute_capability = "9.0"
      instance_type      = "p5.48xlarge" # 8x H100 80GB, AMD EPYC 7R13 (AVX2)
      gpus_per_instance  = 8
      targets            = ["linux-x86_64-cuda-sm90", "linux-x86_64-cuda-sm90-bf16"]
    }
  }

  validation {
    condition = alltrue([
      for name, pool in var.gpu_worker_pools :
      name == "sm${replace(pool.compute_capability, ".", "")}" && alltrue([
        for t in pool.targets : startswith(t, "linux-x86_64-cuda-${name}")
      ])
    ])
    error_message = "Each pool is named sm<XY> after its compute capability X.Y and serves only linux-x86_64-cuda-sm<XY>[-variant] targets."
  }

  validation {
    condition     = alltrue([for pool in var.gpu_worker_pools : pool.gpus_per_instance >= 1 && pool.min_size <= pool.max_size])
    error_message = "gpus_per_instance must be at least 1 and min_size at most max_size."
  }
}
