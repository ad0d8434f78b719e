"""Budget alerts (T4): a tenant's alert settings per unit, and the check that sends them.

A setting holds a low-balance threshold per pocket (in the pocket's commodity: currency,
or kWh/kL in units mode), a frequency and the channels (in-app, email, SMS). The check
(`check_budget_alerts`, run by the `budget_alerts` job from cron) sends:
- low: a pocket's balance is at or below its threshold;
- critical: at or below 20 % of the threshold (sent instead of low, on its own window);
- high_usage: the last 24 hours used at least 50 % more than the daily average of the
  30 local days before today (hour and day roll-ups; a week of history is needed first).
Each (setting, pocket, kind) is sent at most once per frequency window, counted from the
alerts recorded in `budget_alerts_sent`, written in the same transaction as the notifications.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

import click
from flask.cli import AppGroup
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.audit import record
from app.auth.scope import unit_ids_query
from app.jobs import job
from app.labels import UTILITY
from app.models import Account, Meter, Unit, User, Wallet, utcnow
from app.models.budget_alerts import ALERT_CHANNELS, ALERT_FREQUENCIES, BudgetAlertSent, BudgetAlertSetting
from app.models.metering import ConsumptionRollup
from app.money import MoneyError, UTILITY_UNITS, format_amount, parse_amount, quantize
from app.integration import events
from app.notify import notify
from app.reports.usage import local_midnight

FREQUENCY_WINDOWS = {"daily": timedelta(days=1), "weekly": timedelta(days=7)}
CRITICAL_SHARE = Decimal("0.2")


def balance_level(balance: Decimal, threshold: Decimal) -> str | None:
    """"critical" at or below a fifth of the threshold, "low" at or below it, else None (tenants'
    budget alerts and the family managers' alerts read a balance the same way)."""
    if balance <= threshold * CRITICAL_SHARE:
        return "critical"
    if balance <= threshold:
        return "low"
    return None
HIGH_USAGE_FACTOR = Decimal("1.5")
AVERAGE_DAYS = 30
MIN_HISTORY_DAYS = 7
MAX_THRESHOLD = Decimal("1000000")
LABELS = {code: text.lower() for code, text in UTILITY.items()}  # in sentences: "your hot water balance"


class AlertSettingsError(ValueError):
    """Settings that cannot be saved; `errors` maps a form field to its message."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(errors.values()))
        self.errors = errors


def unit_pockets(session: Session, unit: Unit) -> dict[str, Account]:
    """The unit's pockets by utility."""
    rows = session.scalars(select(Account).join(Wallet, Wallet.id == Account.wallet_id)
                           .where(Wallet.unit_id == unit.id).order_by(Account.utility))
    return {account.utility: account for account in rows}


def settings_for(session: Session, user: User, unit: Unit) -> BudgetAlertSetting | None:
    """The user's alert settings for this unit, if saved."""
    return session.scalar(select(BudgetAlertSetting).where(
        BudgetAlertSetting.user_id == user.id, BudgetAlertSetting.unit_id == unit.id))


def recent_alerts_sent(session: Session, setting: BudgetAlertSetting, limit: int = 10) -> list[BudgetAlertSent]:
    """The latest alerts sent under one alert setting, newest first."""
    return session.scalars(select(BudgetAlertSent).where(BudgetAlertSent.setting_id == setting.id)
                           .order_by(BudgetAlertSent.id.desc()).limit(limit)).all()


def save_settings(session: Session, user: User, unit: Unit, *, thresholds: Mapping[str, str],
                  frequency: str, channels: Iterable[str], high_usage: bool) -> BudgetAlertSetting:
    """Validate and store the user's alert settings for the unit (all or nothing); commits."""
    pockets = unit_pockets(session, unit)
    errors: dict[str, str] = {}
    clean: dict[str, str] = {}
    for utility, text in thresholds.items():
        field = f"threshold_{utility}"
        if utility not in pockets:
            errors[field] = f"This unit has no {LABELS.get(utility, utility)} pocket."
            continue
        text = (text or "").strip()
        if not text:
            continue  # no threshold: no low or critical alert for this pocket
        try:
            value = quantize(parse_amount(text, pockets[utility].commodity, allow_negative=True),
                             pockets[utility].commodity)
        except MoneyError as error:
            errors[field] = f"Enter the threshold as a number, like 50 or 50.00 ({error})."
            continue
        if value <= 0 or value > MAX_THRESHOLD:
            errors[field] = "The threshold must be more than 0 and at most 1 000 000."
            continue
        clean[utility] = str(value)
    if frequency not in ALERT_FREQUENCIES:
        errors["frequency"] = "Choose how often you may be alerted."
    chosen = list(dict.fromkeys(channels))
    if not chosen or any(channel not in ALERT_CHANNELS for channel in chosen):
        errors["channels"] = "Choose at least one way to be told: in the app, email or SMS."
    if errors:
        raise AlertSettingsError(errors)
    setting = settings_for(session, user, unit)
    old = None
    if setting is None:
        setting = BudgetAlertSetting(user_id=user.id, unit_id=unit.id)
        session.add(setting)
    else:
        old = {"thresholds": setting.thresholds, "frequency": setting.frequency,
               "channels": setting.channels, "high_usage": setting.high_usage}
    setting.thresholds, setting.frequency = clean, frequency
    setting.channels, setting.high_usage, setting.updated_at = chosen, bool(high_usage), utcnow()
    session.flush()
    record(session, "budget_alerts.saved", setting, estate_id=unit.estate_id, old=old,
           new={"thresholds": clean, "frequency": frequency, "channels": chosen, "high_usage": bool(high_usage)})
    session.commit()
    return setting


# --- the check ------------------------------------------------------------------------


@dataclass(frozen=True)
class DueAlert:
    setting: BudgetAlertSetting
    utility: str
    kind: str
    detail: str
    context: dict


def _usage(session: Session, meter_ids: list[int], now: datetime, tz) -> dict[int, tuple[Decimal, Decimal | None]]:
    """Per meter: the last 24 whole local hours' use and the daily average of the 30 days before today."""
    if not meter_ids:
        return {}
    hour = now.astimezone(tz).replace(minute=0, second=0, microsecond=0)
    today = now.astimezone(tz).date()
    recent = dict(session.execute(
        select(ConsumptionRollup.meter_id, func.sum(ConsumptionRollup.consumption))
        .where(ConsumptionRollup.grain == "hour", ConsumptionRollup.meter_id.in_(meter_ids),
               ConsumptionRollup.period_start >= hour - timedelta(hours=24), ConsumptionRollup.period_start < hour)
        .group_by(ConsumptionRollup.meter_id)).all())
    history = {meter_id: (total, days) for meter_id, total, days in session.execute(
        select(ConsumptionRollup.meter_id, func.sum(ConsumptionRollup.consumption), func.count())
        .where(ConsumptionRollup.grain == "day", ConsumptionRollup.meter_id.in_(meter_ids),
               ConsumptionRollup.period_start >= local_midnight(today - timedelta(days=AVERAGE_DAYS), tz),
               ConsumptionRollup.period_start < local_midnight(today, tz))
        .group_by(ConsumptionRollup.meter_id))}
    result = {}
    for meter_id in meter_ids:
        total, days = history.get(meter_id, (0, 0))
        average = Decimal(total) / days if days >= MIN_HISTORY_DAYS else None
        result[meter_id] = (Decimal(recent.get(meter_id) or 0), average)
    return result


def due_alerts(session: Session, now: datetime | None = None) -> list[DueAlert]:
    """Every alert the settings call for now and have not sent inside their frequency window."""
    now = now or utcnow()
    settings = list(session.scalars(select(BudgetAlertSetting).order_by(BudgetAlertSetting.id)))
    if not settings:
        return []
    last_sent = {(s, u, k): at for s, u, k, at in session.execute(
        select(BudgetAlertSent.setting_id, BudgetAlertSent.utility, BudgetAlertSent.kind,
               func.max(BudgetAlertSent.sent_at)).group_by(
            BudgetAlertSent.setting_id, BudgetAlertSent.utility, BudgetAlertSent.kind))}
    due: list[DueAlert] = []
    for setting in settings:
        user = session.get(User, setting.user_id)
        unit = session.get(Unit, setting.unit_id)
        if not user.active or not (user.is_staff or session.scalar(
                select(Unit.id).where(Unit.id == unit.id, Unit.id.in_(unit_ids_query(user, ("tenant",)))))):
            continue  # moved out or lost access: no more alerts about this unit
        window = FREQUENCY_WINDOWS[setting.frequency]

        def quiet(utility: str, kind: str) -> bool:
            sent = last_sent.get((setting.id, utility, kind))
            return sent is not None and now - sent < window

        estate = unit.estate
        base = {"unit": unit, "estate": estate}
        pockets = unit_pockets(session, unit)
        for utility, text in sorted((setting.thresholds or {}).items()):
            pocket = pockets.get(utility)
            if pocket is None:
                continue
            threshold = Decimal(text)
            kind = balance_level(pocket.balance, threshold)
            if kind is None:
                continue
            if quiet(utility, kind):
                continue
            balance = format_amount(pocket.balance, pocket.commodity)
            limit = format_amount(threshold, pocket.commodity)
            due.append(DueAlert(setting, utility, kind, f"{balance} at or below {limit}", {
                **base, "kind": kind, "utility": LABELS[utility], "balance": balance, "threshold": limit}))
        if setting.high_usage:
            meters = list(session.scalars(select(Meter).where(Meter.unit_id == unit.id, Meter.role == "unit")))
            usage = _usage(session, [m.id for m in meters], now, estate.tz)
            by_utility: dict[str, list[tuple[Decimal, Decimal | None]]] = defaultdict(list)
            for meter in meters:
                by_utility[meter.utility].append(usage[meter.id])
            for utility, figures in sorted(by_utility.items()):
                if any(average is None for _, average in figures):
                    continue
                recent = sum((r for r, _ in figures), Decimal(0))
                average = sum((a for _, a in figures), Decimal(0))
                if average <= 0 or recent < average * HIGH_USAGE_FACTOR or quiet(utility, "high_usage"):
                    continue
                unit_code = UTILITY_UNITS[utility]
                used, usual = format_amount(recent, unit_code), format_amount(average, unit_code)
                percent = int((recent / average - 1) * 100)
                due.append(DueAlert(setting, utility, "high_usage", f"{used} in 24 h against {usual} a day", {
                    **base, "kind": "high_usage", "utility": LABELS[utility], "used": used, "usual": usual,
                    "percent": percent}))
    return due


def check_budget_alerts(session: Session, now: datetime | None = None) -> list[DueAlert]:
    """Send every due alert through notify() and record it, in one transaction; return what was sent."""
    now = now or utcnow()
    due = due_alerts(session, now)
    for alert in due:
        user = session.get(User, alert.setting.user_id)
        notify(session, "budget_alert", alert.context, user=user, channels=alert.setting.channels)
        events.budget_alert_sent(session, alert)  # wallet.low_balance webhooks (A7), if wanted
        session.add(BudgetAlertSent(setting_id=alert.setting.id, utility=alert.utility, kind=alert.kind,
                                    detail=alert.detail[:300], sent_at=now))
    session.commit()
    return due


@job("budget_alerts")
def budget_alerts_job(session: Session, progress, now_iso: str | None = None) -> str:
    """Check every budget-alert setting and send what is due (idempotent inside the frequency window)."""
    sent = check_budget_alerts(session, datetime.fromisoformat(now_iso) if now_iso else None)
    from app.families.alerts import check_family_alerts  # F3, F4: shared wallets' alerts to their managers
    family = check_family_alerts(session, datetime.fromisoformat(now_iso) if now_iso else None)
    if family:
        return f"{len(sent)} budget alert(s) sent; {len(family)} family alert(s) sent"
    return f"{len(sent)} budget alert(s) sent"


alerts_cli = AppGroup("alerts", help="Tenant budget alerts.")


@alerts_cli.command("check")
def check_command() -> None:
    """Send the budget alerts that are due now."""
    from app.extensions import db

    sent = check_budget_alerts(db.session)
    click.echo(f"{len(sent)} budget alert(s) sent")
    for alert in sent:
        click.echo(f"  {alert.kind:<10} unit {alert.setting.unit_id} {alert.utility}: {alert.detail}")
