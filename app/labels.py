"""Human labels for the codes stored in rows: utilities (pockets), ledger transaction kinds,
job kinds, statuses, alert, tariff and feature kinds; and job results as sentences.

`label(kind, value)` is the one lookup, registered as the Jinja filter `label`:
`{{ row.utility | label("utility") }}`. A code without an entry falls back to a readable
form of itself ("hot_water" -> "Hot water"), so a new code never reaches a page as snake_case.
"""
from __future__ import annotations

from flask import Flask

UTILITY = {"electricity": "Electricity", "water": "Water", "hot_water": "Hot water", "solar": "Solar"}

LABELS: dict[str, dict[str, str]] = {
    "utility": UTILITY,
    "pocket": UTILITY,  # a wallet's pockets are named after their utility
    "commodity": {"KWH": "kWh", "KL": "kL"},  # currency codes (ZAR, LSL) stand as they are
    "transaction": {
        "topup": "Top-up", "consumption": "Use", "standing_charge": "Standing charge",
        "solar_export": "Solar export credit", "adjustment": "Adjustment",
        "reversal": "Correction", "levy": "Levy", "settlement": "Settlement", "refund": "Refund",
        "arrears": "Debt carried to arrears", "arrears_payment": "Arrears payment",
        "write_off": "Debt written off",  # arrears (issue 16)
        "solar_allocation": "Shared solar",  # issue 19
    },
    "hold": {"arrears": "Suspended for arrears", "spend_limit": "Spend limit reached",
             "demand": "Demand management", "manual": "Held by staff"},
    "job": {
        "uisp_refresh": "Refresh from UISP", "koios_import": "Koios readings import",
        "koios_payments_import": "Koios payments import", "thundercloud_import": "ThunderCloud import",
        "generate_monthly_statements": "Monthly statements", "ledger_verify": "Ledger verification",
        "budget_alerts": "Budget alerts", "meter_watch": "Meter watch (frozen registers)", "relay_holds": "Relay holds that ran out",
        "readings_partitions": "Reading partitions ahead",
        "tariff_schedule": "Tariff notices and activation", "vendor_credit_push": "Credit push to SparkMeter",
        "pocket_flows": "Pocket roll-ups", "deliver_email": "Email delivery",
        "ledger_anchor_email": "Ledger anchor email", "vendor_credit_reversal": "Reversal at SparkMeter",
        "import_stage": "Import preview", "import_commit": "Import commit",
    },
    "import_kind": {"units": "Units", "persons": "People", "meters": "Meters",
                    "opening_balances": "Opening balances"},
    "import_batch": {"staging": "Reading the file", "staged": "Preview (not committed)",
                     "committing": "Committing", "committed": "Committed", "failed": "Failed"},
    "import_action": {"create": "New", "update": "Update", "unchanged": "Unchanged", "reject": "Rejected"},
    "meter_status": {"online": "Online", "offline": "Offline", "imported": "Imported daily",
                     "import_overdue": "Import overdue"},
    "correction_kind": {"reverse": "Reversal", "reassign": "Reassignment to another unit"},
    "correction_status": {"pending": "Waiting for approval", "done": "Posted", "declined": "Declined"},
    "vendor_reversal": {"queued": "Queued", "reversed": "Reversed at SparkMeter", "failed": "Failed",
                        "none": "Nothing to reverse there"},
    "account_kind": {"pocket": "Wallet pocket", "clearing": "Payment clearing", "revenue": "Revenue",
                     "units_issued": "Units issued", "levy": "Levy", "party": "Settlement party",
                     "suspense": "Suspense"},
    "modbus_state": {"ok": "Answering", "timeout": "Not answering (timeout)",
                     "garbage": "Answering nonsense", "unreachable": "Cannot be reached"},
    "job_status": {"queued": "Waiting to start", "running": "Running", "done": "Finished",
                   "failed": "Failed"},
    "payment_status": {"credited": "Received", "pending": "Waiting for payment",
                       "unmatched": "Not matched to a unit", "to_confirm": "To confirm",
                       "failed": "Failed", "cancelled": "Cancelled", "expired": "Expired (never paid)",
                       "reversed": "Reversed"},
    "payment_line": {"received": "received", "recorded": "recorded at SparkMeter", "reversed": "reversed",
                     "pending": "waiting for PayFast", "failed": "failed", "cancelled": "cancelled",
                     "expired": "expired (not paid)"},
    "command_status": {"pending": "Queued", "published": "Sent, not yet acknowledged",
                       "acknowledged": "Acknowledged", "timed_out": "No acknowledgement"},
    "import_status": {"imported": "Imported", "duplicate": "Already imported", "error": "Refused"},
    "occupancy": {"occupied": "Occupied", "vacant": "Vacant", "maintenance": "Maintenance"},
    "alert": {
        "tamper": "Register went backwards", "rollover": "Register rolled over", "spike": "Spike",
        "gap": "Gap in readings", "frozen": "Frozen register", "relay_no_ack": "Relay did not acknowledge",
        "water_credit_limit": "Water past its credit limit", "no_tariff": "No tariff in force",
        "low": "Low balance", "critical": "Critical balance", "high_usage": "High use",
    },
    "tariff": {"flat": "Flat rate", "block": "Inclining blocks", "tou": "Time of use"},
    "period_status": {"open": "Open", "closed": "Closed", "locked": "Locked"},
    "protocol": {"chirpstack": "LoRaWAN (ChirpStack)", "mqtt_direct": "Direct MQTT", "http": "HTTP gateway",
                 "modbus": "Modbus/RS485", "sparkmeter": "SparkMeter"},
    "meter_role": {"unit": "Unit supply", "bulk": "Estate bulk supply", "solar": "Solar generation"},
    "meter_state": {"attached": "In service", "detached": "Replaced"},
    "denomination": {"currency": "Money", "units": "Units (kWh and kL)"},
    "role": {"staff": "Staff", "tenant": "Tenant", "owner": "Owner", "family": "Family",
             "body_corporate": "Body corporate", "agent": "Managing agent", "utility": "Utility"},
    "login_status": {"none": "No login", "invited": "Invited (no password yet)", "active": "Active",
                     "inactive": "Deactivated"},
    "unit_link": {"tenancy": "Tenancy", "ownership": "Ownership"},
    "feature": {"credit_control": "Credit control", "statements": "Monthly statements",
                "levies_auto_deduct": "Levies auto-deduct"},
}

# Issue 15 (agents: moves and bulk top-up)
LABELS["job"]["bulk_topup"] = "Bulk top-up"
LABELS["job"]["payment_receipts"] = "Payment receipts"
LABELS["job"]["send_notice"] = "Tenant notice"
LABELS["import_kind"]["tenancies"] = "Tenancies (move-ins)"
LABELS["refund_status"] = {"owed": "To pay", "paid": "Paid"}
LABELS["bulk_outcome"] = {"credited": "Credited", "skipped": "Skipped"}
LABELS["account_kind"]["refunds_payable"] = "Refunds payable"
# Utility layer (issue 19)
LABELS["job"].update({"utility_losses": "Daily losses (bulk vs units)", "meter_anomalies": "Meter anomaly scores",
                      "demand_watch": "Demand management", "utility_profiles": "Consumption profiles"})
LABELS["case_status"] = {"open": "Open", "investigating": "Investigating", "resolved": "Resolved"}
LABELS["anomaly_rule"] = {"z_score": "Unusual day", "sudden_change": "Sudden change",
                          "zero_use": "Zero use (possible bypass)", "negative_use": "Negative use",
                          "purchase_collapse": "Purchases collapsed"}
LABELS["demand_state"] = {"warning": "Warning sent", "restricted": "Supply held", "restored": "Restored"}
# issue 20: settlement and daily reconciliation
LABELS["job"].update({"settlement_run": "Settlement run", "daily_reconciliation": "Daily reconciliation"})
LABELS["job"].update({"solar_allocation": "Shared solar allocation"})  # issue 19
LABELS["party_role"] = {"operator": "Operator", "body_corporate": "Body corporate", "utility": "Utility (bulk supplier)",
                        "landlord": "Landlord", "other": "Other"}
LABELS["rule_method"] = {"percentage": "Percentage of revenue", "fixed": "Fixed amount a month",
                         "remainder": "The remainder"}
LABELS["account_kind"].update({"party": "Settlement party"})
LABELS.setdefault("transaction", {}).update({"settlement": "Settlement to a party",
                                             "settlement_payout": "Settlement payout"})
# Jobs of issues 16, 18 and 21 (named on the Jobs screen and in job panels).
LABELS["job"].update({"levy_run": "Levy run", "webhook_deliver": "Webhook delivery",
                      "webhook_retries": "Webhook retries", "arrears_ladder": "Arrears escalation ladder"})
LABELS["webhook_status"] = {"pending": "Waiting to be sent", "delivered": "Delivered", "failed": "Failed",
                            "abandoned": "Given up"}

# Issue 22: historical backfills and report subscriptions.
LABELS["job"].update({"source_backfill": "Historical backfill", "report_subscriptions": "Report subscriptions"})
LABELS["backfill_source"] = {"koios": "Koios readings", "thundercloud": "ThunderCloud exports"}
LABELS["backfill_status"] = {"queued": "Waiting to start", "running": "Running", "stopping": "Stopping after this day",
                             "stopped": "Stopped", "done": "Finished", "failed": "Failed"}
LABELS["job"].update({"idempotency_purge": "API idempotency purge",  # issue 21
                      "meter_offline_events": "Meter offline webhooks"})

# Issue 23: kinds pages showed as raw codes, and account kinds added since.
LABELS["account_kind"].update({"opening_balance": "Opening balances", "arrears": "Arrears",
                               "owner_pocket": "Owner's pocket", "bad_debt": "Bad debt",
                               "float": "Top-up float"})
LABELS["vendor_push"] = {"queued": "Waiting to be pushed", "pushed": "Pushed", "failed": "Push failed"}
LABELS["relay_state"] = {"on": "On", "off": "Off", "unknown": "Unknown"}
LABELS["sms_outcome"] = {"payment": "Payment", "duplicate": "Duplicate", "ignored": "Ignored",
                         "refused": "Refused", "suspicious": "Suspicious"}
# shown after "Arrears record ·" and in a status cell, lower case as the pages always showed them
LABELS["arrears_source"] = {"move_out": "move out", "levy": "levy", "migration": "migration", "manual": "manual"}
LABELS["arrears_status"] = {"open": "open", "paid": "paid", "written_off": "written off"}
LABELS["reconciliation_check"] = {"readings": "Readings vs bills", "payments": "Payments vs gateway records",
                                  "mpesa": "M-PESA statement", "koios": "Pushes vs Koios payments",
                                  "bulk": "Bulk vs units", "ledger": "Ledger verify"}

VERBATIM = {"commodity"}  # kinds whose unknown codes read best as they are


def label(kind: str, value: str | None) -> str:
    """Return the human label of a stored code of this kind ("" for None)."""
    if value is None or value == "":
        return ""
    value = str(value)
    known = LABELS.get(kind, {}).get(value)
    if known is not None:
        return known
    return value if kind in VERBATIM else value.replace("_", " ").capitalize()


def job_result(run) -> list[str]:
    """A finished job's outcome as sentences a person reads; a failure never shows its traceback."""
    if run.status == "failed":
        return []  # the errors list says what went wrong; the traceback is for the log
    from app.i18n.stored import render_stored

    sentences = []
    for line in (run.result or "").splitlines():
        line = render_stored(line.strip())  # stored in English, shown in the reader's language
        if not line:
            continue
        line = line[0].upper() + line[1:]
        sentences.append(line if line[-1] in ".!?" else line + ".")
    return sentences


def install(app: Flask) -> None:
    """Register `label` as a filter and `job_result` as a global."""
    # As a filter the value comes first: {{ row.kind | label("transaction") }}.
    app.add_template_filter(lambda value, kind: label(kind, value), "label")
    app.add_template_global(job_result, "job_result")
LABELS["job"].update({"debt_cohorts": "Debt cohorts"})  # issue 16 (A5)
