"""The RQ worker: job functions (`worker.jobs.run_job`), maintenance (reconciler, sweeper), the entry point
(`python -m worker`) and the RQ dashboard (`python -m worker.dashboard`)."""
