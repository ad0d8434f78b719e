"""Two-way SMS (T5): inbound BAL/USE/HELP commands answered per second, against a baseline.

Run from the repository root:  .venv/bin/python bench/sms.py [--n 400] [--tenants 200] [--batch 20]
Creates its own PostgreSQL database (BENCH_DATABASE_URL, default meterwise_bench_sms on 127.0.0.1),
migrates it, makes one estate of rented units whose tenants have phones (in three languages), and
drives POST /webhooks/sms through the whole Flask stack in gateway polls of `--batch` messages:

- baseline: the same number of messages the gateway relays and we ignore (an operator's notice
  from an alphanumeric sender): Basic Auth, de-duplication, the payment parser, storage, the outbox;
- commands: BAL, USE and HELP (English, French, Sesotho) from the tenants' phones, each matched on
  its whole E.164 number, answered from the dashboard figures and queued in the outbox.

Every command must be answered exactly once (checked). Times are printed, never asserted.
"""
from __future__ import annotations

import argparse
import base64
import os
import random
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.database import bench_config, drop_database, recreate_database  # noqa: E402
from sqlalchemy import func, make_url, select  # noqa: E402

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/meterwise_bench_sms"
WORDS = ["BAL", "use", "Help", "SOLDE", "conso", "aide", "CHELETE", "tšebeliso", "thuso"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=400, help="messages in each pass")
    parser.add_argument("--tenants", type=int, default=200, help="rented units with a phone")
    parser.add_argument("--batch", type=int, default=20, help="messages per gateway poll")
    args = parser.parse_args()
    url = make_url(os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    recreate_database(url)
    try:
        return run(url, args.n, args.tenants, args.batch)
    finally:
        drop_database(url)


def run(url, n: int, tenants: int, batch: int) -> int:
    from flask_migrate import upgrade

    from app import create_app
    from app.extensions import db
    from app.models import Notification, Person, Tenancy
    from app.models.payments import SmsMessage
    from tests import factories

    config = bench_config(url)
    config.SMS_GATEWAY_USER, config.SMS_GATEWAY_PASSWORD = "gateway", "bench"
    app = create_app(config)
    phones = []
    with app.app_context():
        upgrade()
        estate = factories.make_estate(db.session, currency="LSL", country="LS", timezone="Africa/Maseru")
        for i in range(tenants):
            unit = factories.make_unit(db.session, estate, number=f"U{i:04d}")
            factories.make_wallet(db.session, unit, ("electricity", "water"))
            factories.make_meter(db.session, unit)
            phone = f"+2665{i:07d}"
            person = Person(full_name=f"Tenant {i}", phone=phone, language=("en", "fr", "st")[i % 3])
            db.session.add(person)
            db.session.flush()
            db.session.add(Tenancy(unit_id=unit.id, person_id=person.id, move_in=date(2024, 1, 1)))
            phones.append(phone)
        db.session.commit()
        db.session.remove()

    client = app.test_client()
    headers = {"Authorization": "Basic " + base64.b64encode(b"gateway:bench").decode()}
    rng = random.Random(23)
    counter = iter(range(10**9))

    def poll(messages: list[tuple[str, str]]) -> None:
        body = {"messages": [{"id": f"b-{next(counter)}", "from": sender, "content": content}
                             for sender, content in messages], "updates": []}
        response = client.post("/webhooks/sms", json=body, headers=headers)
        assert response.status_code == 200, response.get_data(as_text=True)[:300]
        sent = response.get_json()["messages"]
        if sent:  # the phone reports them sent on its next poll
            client.post("/webhooks/sms", headers=headers, json={"messages": [], "updates": [
                {"id": m["id"], "status": "SENT"} for m in sent]})

    def timed(messages: list[tuple[str, str]]) -> float:
        started = time.perf_counter()
        for i in range(0, len(messages), batch):
            poll(messages[i:i + batch])
        return len(messages) / (time.perf_counter() - started)

    poll([("Vodacom", "warm-up"), (phones[0], "BAL")])  # templates and query plans
    ignored = [("Vodacom", f"Your bundle {i} expires tomorrow. Dial *123#") for i in range(n)]
    # Each phone texts at most REPLIES_PER_HOUR times, so every command is answered.
    commands = [(phones[(i + 1) % tenants], rng.choice(WORDS)) for i in range(n)]
    baseline = timed(ignored)
    answered = timed(commands)
    with app.app_context():
        replies = db.session.scalar(select(func.count()).select_from(Notification)
                                    .where(Notification.template.like("sms_%")))
        commands_stored = db.session.scalar(select(func.count()).select_from(SmsMessage)
                                            .where(SmsMessage.outcome == "command"))
        db.session.remove()
        db.engine.dispose()
    print(f"ignored relayed SMS (baseline):        {baseline:8.1f} messages/s  (n={n}, {batch} per poll)")
    print(f"commands answered (BAL/USE/HELP, 3 languages): {answered:8.1f} messages/s  (n={n}, {tenants} tenants)")
    print(f"ratio commands / baseline:             {answered / baseline:8.2f}")
    print(f"replies queued: {replies} for {commands_stored} commands (expected {n + 1} each)")
    return 0 if replies == commands_stored == n + 1 else 1


if __name__ == "__main__":
    sys.exit(main())
