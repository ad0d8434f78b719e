"""Periodic jobs for `rq cron workers/cron.py` (RQ >= 2.5; run exactly one cron process).

The schedule itself is the list in app/job_schedule.py, which the staff Jobs screen reads
too; this file only hands each entry to rq cron. Every entry enqueues
`app.job_schedule.start_scheduled(name)` on its queue; the worker (workers/worker.py) runs it
inside the app context, and it starts (or joins) the real, tracked job through app.jobs.
Each entry is registered once under its own name, however often this file is loaded.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from rq import cron  # noqa: E402

from app.config import Config  # noqa: E402
from app.job_schedule import configured_schedule, start_scheduled  # noqa: E402


def register_schedule(config) -> list[str]:
    """Register every scheduled job with rq cron once (a reload replaces, never adds); return the names."""
    names = []
    for entry in configured_schedule(config):
        # rq cron keeps a module-level list until a scheduler consumes it: drop an earlier
        # registration of the same name, so loading this file twice registers each job once.
        cron._job_data_registry[:] = [data for data in cron._job_data_registry
                                      if data.get("name") != entry.name]
        cron.register(start_scheduled, queue_name=entry.queue, args=(entry.name,), cron=entry.cron,
                      name=entry.name)
        names.append(entry.name)
    return names


register_schedule({"UISP_REFRESH_HOURS": Config.UISP_REFRESH_HOURS})
