"""Periodic jobs for `rq cron workers/cron.py` (RQ >= 2.5; run exactly one cron process).

Each entry enqueues a small function on an RQ queue; the worker (workers/worker.py) runs it
inside the app context, and the function starts the real, tracked job through app.jobs.
Areas add their own `register(...)` lines below.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from rq.cron import register  # noqa: E402


def monthly_statements() -> list[str]:
    """Start last month's statement run of every estate that wants statements (O5, S3)."""
    from app.extensions import db
    from app.reports.statement_runs import schedule_monthly_statements

    return schedule_monthly_statements(db.session)


# Hourly on the 1st (UTC): each estate's month ends at its own local midnight, and a run
# that finds everything issued and delivered does nothing.
register(monthly_statements, queue_name="low", cron="5 * 1 * *")
