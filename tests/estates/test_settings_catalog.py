"""The settings catalogue: every setting the code reads is in it, with the default the code used before."""
from __future__ import annotations

import importlib
import re
from decimal import Decimal
from pathlib import Path

import pytest

from app.estates.settings_catalog import BY_KEY, CATALOG, SettingValueError, estate_specs, setting_default, spec_for

APP = Path(__file__).resolve().parents[2] / "app"
# get_setting(session, KEY ...) with KEY a string literal or a module constant.
READ = re.compile(r"get_setting\(\s*\w+,\s*(?:\"(?P<literal>[^\"]+)\"|(?P<constant>[A-Z][A-Z0-9_]*)\s*[,)])")
# Keys in the same table that are import cursors, not settings (built per site, or a sync mark).
NOT_SETTINGS = {"koios.payments.since"}


def _keys_the_code_reads() -> set[str]:
    keys = set()
    for path in APP.rglob("*.py"):
        text = path.read_text()
        for found in READ.finditer(text):
            if found["literal"]:
                keys.add(found["literal"])
            else:
                module = importlib.import_module(".".join(path.relative_to(APP.parent).with_suffix("").parts))
                keys.add(getattr(module, found["constant"]))
    return keys - NOT_SETTINGS


def test_every_setting_the_code_reads_is_in_the_catalogue():
    read = _keys_the_code_reads()
    assert {"water_credit_limit", "tariff_notice_days", "brand_colour", "payment_max_amount"} <= read
    assert read - set(BY_KEY) == set(), "add these settings to app/estates/settings_catalog.py"


def test_catalogue_defaults_are_what_the_code_used_before():
    assert {key: spec.default for key, spec in BY_KEY.items()} == {
        "payment_max_amount": "50000", "mpesa_paybill": None, "mpesa_senders": None,
        "water_credit_limit": "0", "tariff_notice_days": 30, "brand_colour": "#0f766e",
        "loss_threshold_percent": "15", "sparkmeter_customer_code": "{unit}",
        "chirpstack_application_id": "meterwise",
        "chirpstack_profiles": {"default": {"field": "energy", "unit": "kWh"}},
        "ingest_maintenance": False, "metrics_enabled": False,
        "account_number_pattern": "{seq:04d}{code}", "reversal_approval_threshold": "1000",
        "language": "en", "currency_symbol": None,  # languages (issue 23)
        # utility layer (issue 19): demand management
        "demand_threshold_kw": None, "demand_restore_kw": None, "demand_restore_minutes": 15,
        "demand_restrict": False, "demand_hold_minutes": 30, "demand_max_units": 5, "demand_order": "last_hour",
        # arrears (issue 16): credit limits, recovery on top-up, the ladder, write-off approval
        "credit_limit": "0", "arrears_recovery_mode": "off", "arrears_recovery_percent": "25",
        "arrears_recovery_fixed": "0", "arrears_restricted_percent": "50",
        "arrears_ladder": ["0:warn", "30:restrict", "60:suspend", "90:escalate"], "write_off_approval_threshold": "1000",
        "cohort_day": 30, "cohort_size": 200, "cohort_rank": "owed", "cohort_source": None,  # issue 16 (A5)
        "thundercloud_sites": None,  # issue 22: no ThunderCloud backfill until the estate lists its sites
    }


def test_code_takes_its_defaults_from_the_catalogue():
    from app.billing.schedule import DEFAULT_NOTICE_DAYS
    from app.metering.decoders import DEFAULT_PROFILES
    from app.payments.credit import DEFAULT_MAX_AMOUNT
    from app.statements.figures import DEFAULT_BRAND_COLOUR

    assert (DEFAULT_NOTICE_DAYS, DEFAULT_PROFILES, DEFAULT_MAX_AMOUNT, DEFAULT_BRAND_COLOUR) == (
        30, {"default": {"field": "energy", "unit": "kWh"}}, "50000", "#0f766e")
    copy = setting_default("chirpstack_profiles")
    copy["default"]["unit"] = "Wh"
    assert setting_default("chirpstack_profiles")["default"]["unit"] == "kWh", "callers get a copy"


def test_every_entry_has_a_label_and_a_help_line():
    for spec in CATALOG:
        assert spec.label and spec.help.endswith((".", ")")), spec.key
    assert [spec.key for spec in estate_specs()] == [
        "payment_max_amount", "mpesa_paybill", "mpesa_senders", "account_number_pattern",
        "reversal_approval_threshold", "water_credit_limit",
        "credit_limit", "arrears_recovery_mode", "arrears_recovery_percent", "arrears_recovery_fixed",  # issue 16
        "arrears_restricted_percent", "arrears_ladder", "write_off_approval_threshold",
        "cohort_day", "cohort_size", "cohort_rank",  # issue 16 (A5)
        "tariff_notice_days",
        "brand_colour", "loss_threshold_percent", "sparkmeter_customer_code", "thundercloud_sites", "chirpstack_application_id",
        "demand_threshold_kw", "demand_restore_kw", "demand_restore_minutes", "demand_restrict",  # issue 19
        "demand_hold_minutes", "demand_max_units", "demand_order",
        "language", "currency_symbol"]  # languages (issue 23)


@pytest.mark.parametrize(("key", "typed", "stored"), [
    ("tariff_notice_days", "45", 45),
    ("tariff_notice_days", "0", 0),
    ("water_credit_limit", "50.5", "50.5"),
    ("payment_max_amount", "1000", "1000"),
    ("brand_colour", "#AA00ff", "#aa00ff"),
    ("loss_threshold_percent", "12,5", "12.5"),
    ("loss_threshold_percent", "20 %", "20"),
    ("mpesa_senders", "mpesa, M-PESA, mpesa", ["MPESA", "M-PESA"]),
    ("mpesa_paybill", "400200", "400200"),
    ("sparkmeter_customer_code", "C-{serial}", "C-{serial}"),
    ("chirpstack_application_id", "5f1c-app", "5f1c-app"),
    ("tariff_notice_days", "  ", None),  # empty: not set for this estate
])
def test_settings_read_what_people_type(key, typed, stored):
    assert spec_for(key).parse(typed, currency="ZAR") == stored


@pytest.mark.parametrize(("key", "typed", "message"), [
    ("tariff_notice_days", "thirty", "is not a whole number"),
    ("tariff_notice_days", "400", "above the maximum, 365"),
    ("tariff_notice_days", "-1", "below the minimum, 0"),
    ("water_credit_limit", "-5", "cannot be negative"),
    ("water_credit_limit", "1.234", "at most 2 decimals"),
    ("payment_max_amount", "0", "below the minimum, 1"),
    ("brand_colour", "teal", "is not a colour"),
    ("loss_threshold_percent", "101", "above the maximum, 100"),
    ("loss_threshold_percent", "abc", "is not a percentage"),
    ("mpesa_senders", "SAFARICOM", "SAFARICOM is not a trusted sender"),
    ("mpesa_senders", "TOO-LONG-SENDER", "1 to 11 letters"),
    ("mpesa_paybill", "12ab", "5 to 7 digits"),
    ("sparkmeter_customer_code", "C-{meter}", "include {unit}"),
    ("sparkmeter_customer_code", "{unit}-{meter}", "only {unit} and {serial}"),
    ("sparkmeter_customer_code", "{unit}-{", "braces must be"),
    ("chirpstack_application_id", "a/b", "no spaces or slashes"),
    ("tariff_notice_days", "9" * 300, "at most 200 characters"),
])
def test_settings_refuse_bad_values_with_a_reason(key, typed, message):
    with pytest.raises(SettingValueError, match=re.escape(message)):
        spec_for(key).parse(typed, currency="ZAR")


def test_amounts_follow_the_estates_currency_and_denomination():
    assert spec_for("payment_max_amount").parse("500", currency="XOF") == "500"
    with pytest.raises(SettingValueError, match="XOF amounts have no decimals"):
        spec_for("payment_max_amount").parse("500.5", currency="XOF")
    # In units mode the water pocket holds kL: the limit is in kL, to the litre.
    assert spec_for("water_credit_limit").parse("1.250", currency="LSL", denomination="units") == "1.250"
    assert Decimal(spec_for("loss_threshold_percent").default) == 15
