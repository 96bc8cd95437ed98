variable "region" {
  description = "AWS region of the build worker pools."
  type        = string
  default     = "us-east-1"
}

variable "subnet_ids" {
  description = "Private subnets the build workers run in (they reach Temporal, S3 and Postgres; nothing else)."
  type        = list(string)
  default     = []
}

variable "security_group_ids" {
  description = "Security groups of the build workers (egress to Temporal, S3 and Postgres only)."
  type        = list(string)
  default     = []
}

variable "temporal_address" {
  description = "host:port of the Temporal frontend the workers poll (TEMPORAL_ADDRESS)."
  type        = string
  default     = "temporal.kiln.internal:7233"
}

variable "instance_profile_name" {
  description = "IAM instance profile of the workers: read models and write artifacts in the Kiln bucket, read the signing key."
  type        = string
  default     = "kiln-build-worker"
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
