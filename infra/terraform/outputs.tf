output "gpu_worker_queues" {
  description = "Per GPU family: the Temporal task queues its workers poll, and how many builds one instance runs at once per queue."
  value = {
    for name, pool in local.gpu_pools : name => {
      compute_capability  = pool.compute_capability
      queues              = pool.queues
      builds_per_instance = pool.gpus_per_instance
    }
  }
}
