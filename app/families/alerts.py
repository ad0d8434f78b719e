"""Alerts about shared wallets (F3, F4) to the people who manage them: low and critical
balances, 80 % of a spend limit, a spend limit reached (and the supply restricted by a
`spend_limit` relay hold until the next local day or month, where credit control is on), and
supply off. Each goes once per grant, pocket, kind and window (a local day, or the month for
monthly limits), on the channels the grant holder chose. Run by the budget-alert job.
"""
from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.families.limits import WARNING_SHARE, period_bounds, pocket_of, spent_since
from app.i18n.label_texts import N_
from app.labels import UTILITY
from app.ledger.accounts import metered_utilities
from app.models import Meter, Unit, User, utcnow
from app.models.families import FamilyAlertSent, SpendLimit, WalletGrant
from app.money import format_amount
from app.notify.budget_alerts import balance_level

log = logging.getLogger(__name__)
LABELS = {code: text.lower() for code, text in UTILITY.items()}


def _managers(session: Session, unit_id: int) -> list[WalletGrant]:
    return list(session.scalars(select(WalletGrant).join(User, User.id == WalletGrant.user_id).where(
        WalletGrant.unit_id == unit_id, WalletGrant.revoked_at.is_(None), WalletGrant.level == "manage",
        WalletGrant.alerts_enabled.is_(True), User.active.is_(True)).order_by(WalletGrant.id)))


class _Sender:
    """Sends each (grant, utility, kind, window) alert once, remembering what went out this run."""

    def __init__(self, session: Session, now: datetime):
        self.session, self.now, self.sent = session, now, []
        self.seen = set()

    def send(self, grant: WalletGrant, utility: str, kind: str, window: str, context: dict) -> bool:
        key = (grant.id, utility, kind, window)
        if key in self.seen or self.session.scalar(select(FamilyAlertSent.id).where(
                FamilyAlertSent.grant_id == grant.id, FamilyAlertSent.utility == utility,
                FamilyAlertSent.kind == kind, FamilyAlertSent.period_key == window)):
            return False
        self.seen.add(key)
        from app.notify import notify

        notify(self.session, "family_alert", {**context, "kind": kind}, user=grant.user,
               channels=tuple(grant.alert_channels or ("in_app",)))
        self.session.add(FamilyAlertSent(grant_id=grant.id, utility=utility, kind=kind, period_key=window,
                                         detail={k: str(v) for k, v in context.items()
                                                 if k not in ("unit", "estate")}, sent_at=self.now))
        self.sent.append(key)
        return True


def _spend_checks(session: Session, sender: _Sender, limit: SpendLimit, unit: Unit, now: datetime) -> None:
    estate = unit.estate
    pocket = pocket_of(session, unit.id, limit.utility)
    if pocket is None:
        return
    bounds = period_bounds(estate, now)
    reached_until = None
    figures = []
    for period, cap, start, end, window, words in (
            (N_("daily"), limit.daily, bounds.day_start, bounds.day_end, bounds.day_key, N_("today")),
            (N_("monthly"), limit.monthly, bounds.month_start, bounds.month_end, bounds.month_key, N_("this month"))):
        if cap is None:
            continue
        spent = spent_since(session, pocket.id, start)
        cap = Decimal(cap)
        figures.append((period, cap, spent, end, window, words))
        if spent >= cap:
            reached_until = max(reached_until or end, end)
    held = False
    if reached_until is not None and estate.feature_enabled("credit_control"):
        held = _hold(session, unit, limit.utility, reached_until)
    for period, cap, spent, end, window, words in figures:
        base = {"unit": unit, "estate": estate, "utility": LABELS[limit.utility], "period": period,
                "period_words": words, "spent": format_amount(spent, pocket.commodity),
                "limit": format_amount(cap, pocket.commodity),
                "percent": int(spent / cap * 100) if cap else 100}
        for grant in _managers(session, unit.id):
            if spent >= cap:
                until = reached_until.astimezone(estate.tz)  # the template writes it for the reader (X8)
                sender.send(grant, limit.utility, "spend_limit", window, {**base, "held": held, "until": until})
                if held:
                    sender.send(grant, limit.utility, "supply_off", window, {
                        **base, "until": until, "reason": f"the {period} spend limit of {base['limit']} was reached"})
            elif spent >= cap * WARNING_SHARE:
                sender.send(grant, limit.utility, "spend_warning", window, base)


def _hold(session: Session, unit: Unit, utility: str, until: datetime) -> bool:
    """Restrict the pocket's meters until `until` through a spend-limit hold; False when none could be held."""
    from app.metering.credit_control import HoldRefused, place_hold

    held = False
    for meter in session.scalars(select(Meter).where(Meter.unit_id == unit.id, Meter.utility == utility,
                                                     Meter.role == "unit", Meter.detached_at.is_(None))):
        try:
            place_hold(session, meter, "spend_limit", f"{LABELS[utility].capitalize()} spend limit reached",
                       until=until)
            held = True
        except HoldRefused as error:
            log.info("spend limit on unit %s: %s", unit.number, error)
    return held


def _balance_checks(session: Session, sender: _Sender, grant: WalletGrant, now: datetime) -> None:
    unit = grant.unit
    estate = unit.estate
    window = period_bounds(estate, now).day_key  # at most once a day
    from app.notify.budget_alerts import unit_pockets

    threshold = Decimal(grant.low_threshold)
    metered = set(metered_utilities(session, unit.id))
    for utility, pocket in sorted(unit_pockets(session, unit).items()):
        if utility not in metered:
            continue  # a pocket no meter draws on is never low
        kind = balance_level(pocket.balance, threshold)
        if kind is None:
            continue
        sender.send(grant, utility, kind, window, {
            "unit": unit, "estate": estate, "utility": LABELS[utility],
            "balance": format_amount(pocket.balance, pocket.commodity),
            "threshold": format_amount(threshold, pocket.commodity)})


def check_family_alerts(session: Session, now: datetime | None = None) -> list[tuple]:
    """Check every spend limit and managed wallet, hold and alert what is due; commits once."""
    now = now or utcnow()
    sender = _Sender(session, now)
    by_unit: dict[int, list[SpendLimit]] = defaultdict(list)
    for limit in session.scalars(select(SpendLimit).where(
            (SpendLimit.daily.is_not(None)) | (SpendLimit.monthly.is_not(None))).order_by(SpendLimit.id)):
        by_unit[limit.unit_id].append(limit)
    for unit_id, limits in by_unit.items():
        unit = session.get(Unit, unit_id)
        for limit in limits:
            _spend_checks(session, sender, limit, unit, now)
    for grant in session.scalars(select(WalletGrant).join(User, User.id == WalletGrant.user_id).where(
            WalletGrant.revoked_at.is_(None), WalletGrant.level == "manage", WalletGrant.alerts_enabled.is_(True),
            WalletGrant.low_threshold.is_not(None), User.active.is_(True)).order_by(WalletGrant.id)):
        _balance_checks(session, sender, grant, now)
    session.commit()
    return sender.sent


def save_alert_settings(session: Session, grant: WalletGrant, *, enabled: bool, channels: list[str],
                        low_threshold: str, acting_user: User) -> WalletGrant:
    """Set how the grant holder hears about this wallet (F4); commits once."""
    from app import audit
    from app.families import FamilyError
    from app.models.budget_alerts import ALERT_CHANNELS
    from app.money import MoneyError, parse_amount, quantize

    errors = {}
    chosen = [c for c in channels if c in ALERT_CHANNELS]
    if enabled and not chosen:
        errors["channels"] = "Choose at least one way to be told, or switch alerts off."
    threshold = None
    if (low_threshold or "").strip():
        try:
            threshold = quantize(parse_amount(low_threshold, grant.unit.estate.currency), grant.unit.estate.currency)
            if threshold < 0 or threshold > Decimal("10000000"):
                raise MoneyError("out of range")
        except MoneyError:
            errors["low_threshold"] = "Enter an amount like 50.00, or leave it empty for no low-balance alert."
    if errors:
        raise FamilyError(errors)
    old = {"alerts": grant.alerts_enabled, "channels": grant.alert_channels, "low": grant.low_threshold}
    grant.alerts_enabled, grant.alert_channels, grant.low_threshold = enabled, chosen, threshold
    audit.record(session, "wallet_grant.alerts", grant, estate_id=grant.unit.estate_id, old=old,
                 new={"alerts": enabled, "channels": chosen, "low": threshold, "by": acting_user.email})
    session.commit()
    return grant
