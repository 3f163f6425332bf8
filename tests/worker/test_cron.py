import threading

from rq import Queue

from worker.cron import build_scheduler, run
from worker.maintenance import maintenance_queue_name


def test_scheduler_registers_the_maintenance_jobs(wsettings, redis) -> None:
    settings = wsettings(reconcile_interval_s=30, sweep_interval_s=60)
    jobs = {job.func_name: job for job in build_scheduler(redis, settings).get_jobs()}
    assert set(jobs) == {"worker.reconciler.reconcile", "worker.sweeper.sweep"}
    assert jobs["worker.reconciler.reconcile"].interval == 30 and jobs["worker.sweeper.sweep"].interval == 60
    for job in jobs.values():
        assert job.queue_name == maintenance_queue_name(settings)
        options = job.job_options
        assert options["job_timeout"] and options["result_ttl"] and options["ttl"]


def test_cron_loop_enqueues_on_the_maintenance_queue(wsettings, redis) -> None:
    settings = wsettings(reconcile_interval_s=1, sweep_interval_s=1)
    stop = threading.Event()
    thread = threading.Thread(target=run, args=(settings, stop), daemon=True)
    thread.start()
    stop.wait(2.5)
    stop.set()
    thread.join(timeout=10)
    assert not thread.is_alive()
    queue = Queue(maintenance_queue_name(settings), connection=redis)
    names = [job.func_name for job in queue.get_jobs()]
    assert names.count("worker.reconciler.reconcile") >= 2 and names.count("worker.sweeper.sweep") >= 2
    job = queue.get_jobs()[0]
    assert job.timeout and job.result_ttl and job.ttl
