"""RQ worker entry point (`make worker`): builds the app once and works the high, default and low queues."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from redis import Redis  # noqa: E402
from rq import Worker  # noqa: E402

from app import create_app  # noqa: E402
from app.jobs import QUEUES  # noqa: E402


def main() -> None:
    """Run an RQ worker inside one app context (jobs use the app's database and config)."""
    app = create_app()
    url = app.config.get("REDIS_URL")
    if not url:
        sys.exit("REDIS_URL is not set: without it jobs run inline in the web process.")
    with app.app_context():
        Worker(list(QUEUES), connection=Redis.from_url(url)).work(with_scheduler=True)


if __name__ == "__main__":
    main()
