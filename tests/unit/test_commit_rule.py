"""One commit rule: views never commit; the domain function a view calls commits once."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COMMIT = re.compile(r"\b(db\.)?session\.commit\(\)")


def test_views_and_api_endpoints_never_commit():
    offenders = [f"{path.relative_to(ROOT)}:{number}"
                 for folder in ("app/layers", "app/api")
                 for path in sorted((ROOT / folder).rglob("*.py"))
                 for number, line in enumerate(path.read_text().splitlines(), start=1)
                 if COMMIT.search(line.split("#")[0])]
    assert offenders == []


def test_the_domain_functions_views_call_say_they_commit_once():
    from app.estates.profile import create_estate, update_estate
    from app.billing.tariff_classes import assign_class, create_class, rename_class
    from app.estates.status import set_estate_feature, set_period_status
    from app.metering.ingest import ingest_and_commit, replay_dead_letter, set_maintenance
    from app.notify import read_in_app
    from app.payments.payfast import start_checkout
    from app.payments.vendor_credit import push_payment

    for function in (set_estate_feature, set_period_status, ingest_and_commit, replay_dead_letter, set_maintenance,
                     read_in_app, start_checkout, push_payment, create_estate, update_estate,
                     create_class, rename_class, assign_class):
        assert "commits once" in function.__doc__, function.__name__
