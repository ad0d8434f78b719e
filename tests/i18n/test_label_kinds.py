"""Every `label()` kind a page or export uses names each code its column allows, in words the catalogues know."""
from __future__ import annotations

import re

from tests.i18n.conftest import ROOT

# label("x") as a filter in templates, label("x", value) in Python; not SQL's .label("total"), nor method_label().
USED = re.compile(r"""(?<![\w.])label\(\s*["']([a-z_]+)["']\s*[,)]""")


def allowed_codes() -> dict[str, tuple]:
    """The codes each kind's column allows, read from the models (and the few modules that own them)."""
    from app import jobs
    from app.analytics.daily_reconciliation import CHECKS
    from app.metering.modbus import STATES as MODBUS_STATES
    from app.models import api, arrears, backfills, corrections, estate, imports, ledger, meter, metering, moves
    from app.models import payments, people, settlement, utility
    from app.models.operations import JOB_STATUSES

    utilities = meter.UTILITIES
    return {
        "utility": utilities, "pocket": utilities, "occupancy": estate.OCCUPANCY_STATUSES,
        "period_status": estate.PERIOD_STATUSES, "feature": estate.LIVE_FEATURES,
        "denomination": estate.WALLET_DENOMINATIONS, "role": people.ROLES, "protocol": meter.PROTOCOLS,
        "meter_role": meter.METER_ROLES, "relay_state": meter.RELAY_STATES,
        "payment_status": (*payments.PAYMENT_STATUSES, "expired"), "vendor_push": payments.VENDOR_PUSH_STATUSES,
        "correction_kind": corrections.CORRECTION_KINDS, "correction_status": corrections.CORRECTION_STATUSES,
        "vendor_reversal": corrections.VENDOR_REVERSAL_STATUSES, "alert": metering.ALERT_KINDS,
        "tariff": metering.TARIFF_KINDS, "command_status": metering.RELAY_COMMAND_STATUSES,
        "hold": metering.HOLD_KINDS, "party_role": settlement.PARTY_ROLES, "rule_method": settlement.RULE_METHODS,
        "reconciliation_check": tuple(name for name, _ in CHECKS), "job_status": JOB_STATUSES,
        "job": tuple(jobs.REGISTRY), "import_batch": imports.IMPORT_STATUSES, "import_action": imports.ROW_ACTIONS,
        "case_status": utility.CASE_STATUSES, "demand_state": utility.DEMAND_STATES,
        "backfill_source": backfills.BACKFILL_SOURCES, "backfill_status": backfills.BACKFILL_STATUSES,
        "webhook_status": api.DELIVERY_STATUSES, "modbus_state": MODBUS_STATES,
        "account_kind": ledger.ACCOUNT_KINDS, "arrears_source": arrears.ARREARS_SOURCES,
        "arrears_status": arrears.ARREARS_STATUSES, "refund_status": moves.REFUND_STATUSES,
    }


def used_kinds() -> set[str]:
    kinds = set()
    for path in [*ROOT.glob("templates/**/*.html"), *ROOT.glob("templates/**/*.txt"), *ROOT.glob("app/**/*.py")]:
        kinds.update(USED.findall(path.read_text(encoding="utf-8")))
    return kinds


def test_every_code_of_every_kind_shown_has_a_text_in_the_catalogues(app):
    from app.i18n.label_texts import LABEL_TEXTS
    from app.labels import LABELS, VERBATIM

    allowed, marked = allowed_codes(), set(LABEL_TEXTS)
    kinds = used_kinds()
    assert {"meter_role", "vendor_push", "utility", "job"} <= kinds and allowed["job"]  # the scan finds them
    for kind in sorted(kinds - VERBATIM):
        assert kind in LABELS, f"label kind {kind!r} is used but has no texts in app/labels.py"
        missing = [code for code in allowed.get(kind, ()) if code not in LABELS[kind]]
        assert not missing, f"{kind}: no text for {missing}"
    unmarked = sorted({text for kind, texts in LABELS.items() if kind not in VERBATIM
                       for text in texts.values() if text not in marked})
    assert not unmarked, f"texts of app/labels.py missing from app/i18n/label_texts.py: {unmarked}"


def test_a_meter_role_and_a_push_status_read_in_french(app):
    from flask_babel import force_locale

    from app.i18n.formatting import translated_label

    with app.test_request_context(), force_locale("fr"):
        assert translated_label("bulk", "meter_role") == "Alimentation générale de la résidence"
        assert translated_label("solar", "meter_role") == "Production solaire"
    with app.test_request_context(), force_locale("en"):
        assert translated_label("pushed", "vendor_push") == "Pushed"
