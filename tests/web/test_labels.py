"""Human labels from one place (app/labels.py): no stored code reaches a page as itself."""
from __future__ import annotations

import pathlib
import re

from app.jobs import REGISTRY
from app.labels import LABELS, job_result, label
from app.models import JobRun, utcnow
from app.models.budget_alerts import BUDGET_ALERT_KINDS
from app.models.estate import OCCUPANCY_STATUSES, PERIOD_STATUSES
from app.models.meter import PROTOCOLS, UTILITIES
from app.models.metering import TARIFF_KINDS
from tests.web.test_pages import body, portfolio  # noqa: F401  (the fixture)

TEMPLATES = pathlib.Path(__file__).resolve().parents[2] / "templates"


def test_every_stored_code_has_its_own_label(app):
    sets = {"utility": UTILITIES, "pocket": UTILITIES, "tariff": TARIFF_KINDS, "protocol": PROTOCOLS,
            "alert": BUDGET_ALERT_KINDS, "occupancy": OCCUPANCY_STATUSES, "period_status": PERIOD_STATUSES,
            "job": tuple(REGISTRY), "transaction": ("topup", "consumption", "standing_charge",
                                                    "solar_export", "adjustment", "reversal")}
    missing = {kind: [code for code in codes if code not in LABELS[kind]] for kind, codes in sets.items()}
    assert {kind: codes for kind, codes in missing.items() if codes} == {}
    assert label("transaction", "topup") == "Top-up" and label("job", "uisp_refresh") == "Refresh from UISP"
    assert label("utility", "hot_water") == "Hot water" and label("utility", None) == ""
    assert label("transaction", "new_kind") == "New kind", "an unknown code is still readable"


def test_no_template_prints_a_raw_code_or_prettifies_one_itself():
    offenders = []
    for path in TEMPLATES.rglob("*.html"):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            text = re.sub(r'[\w-]+="[^"]*"', "", line)  # codes in ids and values are fine
            if re.search(r'\.replace\("_", " "\)|\.(kind|status|utility|protocol) }}', text):
                offenders.append(f"{path.relative_to(TEMPLATES)}:{number}")
    assert offenders == []


def test_transaction_filter_and_rows_use_human_kinds(portfolio, login):  # noqa: F811
    page = body(login(portfolio.emails["tenant"]).get(f"/tenant/units/{portfolio.unit_id}/transactions"))
    assert ">Top-up</option>" in page and "Topup" not in page
    assert ">Adjustment</option>" in page


def test_job_panels_name_the_job_and_say_the_result_in_sentences(portfolio, login, committed):  # noqa: F811
    with committed() as s:
        s.add(JobRun(kind="uisp_refresh", target="all", status="done", done=3, total=3,
                     started_at=utcnow(), finished_at=utcnow(),
                     result="UISP all: 3 of 3 clients refreshed, 0 failed; 9 rows written"))
        s.add(JobRun(kind="koios_import", target="koios:readings:x", status="failed", started_at=utcnow(),
                     finished_at=utcnow(), errors=["ConnectionError: Koios did not answer"],
                     result='Traceback (most recent call last):\n  File "x.py", line 1\nConnectionError'))
    page = body(login(portfolio.emails["staff"]).get("/staff/"))
    assert "Refresh from UISP</strong> · Finished" in page and "Uisp refresh" not in page
    assert '<p class="result">UISP all: 3 of 3 clients refreshed, 0 failed; 9 rows written.</p>' in page
    assert "Koios readings import</strong> · Failed" in page
    assert "ConnectionError: Koios did not answer" in page, "the error says what went wrong"
    assert "Traceback" not in page and "<pre" not in page


def test_job_result_is_sentences_and_never_a_traceback():
    done = JobRun(kind="ledger_verify", status="done", result="EST1: 4 transactions, chain intact\nLEDGER OK")
    assert job_result(done) == ["EST1: 4 transactions, chain intact.", "LEDGER OK."]
    failed = JobRun(kind="ledger_verify", status="failed", result="Traceback (most recent call last):")
    assert job_result(failed) == []
