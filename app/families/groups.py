"""Wallet groups (F1): a person's group over wallets they manage, its overview, and the rules
that split one top-up across members (equal, fixed amounts, or up to a target balance).

Totals are per utility and commodity (rand never added to loti, kWh never to money); a
split works in the currency's minor units so its legs always add up to the amount exactly,
the remainder of an equal split going to one stated member.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from app import audit
from app.families import FamilyError
from app.models import Unit, User
from app.models.families import WalletGroup, WalletGroupMember
from app.money import minor_units

SPLIT_RULES = {"equal": "Equal shares", "fixed": "Fixed amounts", "target": "Bring each to a target balance"}
MAX_NAME = 100


class SplitError(FamilyError):
    """A split that cannot be made as asked."""


def _minor(amount: Decimal, currency: str) -> int:
    scaled = Decimal(amount) * (10 ** minor_units(currency))
    if scaled != scaled.to_integral_value():
        raise SplitError({"amount": f"{amount} has more decimals than {currency} allows."})
    return int(scaled)


def _major(minor: int, currency: str) -> Decimal:
    return (Decimal(minor) / (10 ** minor_units(currency))).quantize(Decimal(1).scaleb(-minor_units(currency)))


def split_equal(amount: Decimal, members: int, currency: str, *, remainder_to: int = 0) -> list[Decimal]:
    """Equal shares in minor units; what cannot be shared equally goes to member `remainder_to`."""
    if members <= 0:
        raise SplitError({"members": "The group has no member in this currency."})
    if not 0 <= remainder_to < members:
        raise SplitError({"remainder_to": "Choose the member who gets the remainder."})
    total = _minor(amount, currency)
    if total <= 0:
        raise SplitError({"amount": "Enter a positive amount."})
    share, rest = divmod(total, members)
    legs = [share] * members
    legs[remainder_to] += rest
    return [_major(x, currency) for x in legs]


def split_fixed(amounts: Sequence[Decimal], currency: str) -> list[Decimal]:
    """Fixed amounts per member, each zero or more, together positive."""
    minors = [_minor(a, currency) for a in amounts]
    if any(m < 0 for m in minors):
        raise SplitError({"amount": "An amount cannot be negative."})
    if sum(minors) <= 0:
        raise SplitError({"amount": "Enter at least one amount."})
    return [_major(m, currency) for m in minors]


def split_to_target(balances: Sequence[Decimal], targets: Sequence[Decimal], currency: str,
                    amount: Decimal | None = None) -> list[Decimal]:
    """What brings each member up to its target, never past it.

    Without `amount` the legs are exactly what is missing; with a smaller amount it is shared
    in proportion to what each misses (largest remainder), still never past a target. An amount
    above what is missing is refused: it would overshoot.
    """
    needs = [max(_minor(t, currency) - _ceil_minor(b, currency), 0) for b, t in zip(balances, targets, strict=True)]
    missing = sum(needs)
    if missing <= 0:
        raise SplitError({"amount": "Every member is already at or above its target."})
    if amount is None:
        return [_major(n, currency) for n in needs]
    total = _minor(amount, currency)
    if total <= 0:
        raise SplitError({"amount": "Enter a positive amount."})
    if total > missing:
        raise SplitError({"amount": f"That is more than the {_major(missing, currency)} {currency} "
                                    "the members need to reach their targets."})
    floors = [total * n // missing for n in needs]
    order = sorted(range(len(needs)), key=lambda i: (-((total * needs[i]) % missing), i))
    for i in order[: total - sum(floors)]:
        floors[i] += 1
    return [_major(x, currency) for x in floors]


def _ceil_minor(value: Decimal, currency: str) -> int:
    """A balance in minor units, rounded up (a balance of 10.004 already covers 10.00)."""
    scaled = Decimal(value) * (10 ** minor_units(currency))
    return int(scaled.to_integral_value(rounding="ROUND_CEILING"))


# --- groups -------------------------------------------------------------------------------

def my_groups(session: Session, user: User) -> list[WalletGroup]:
    return list(session.scalars(select(WalletGroup).where(WalletGroup.owner_user_id == user.id)
                                .order_by(WalletGroup.name, WalletGroup.id)))


def create_group(session: Session, user: User, name: str, units: Sequence[Unit]) -> WalletGroup:
    """Make a group of wallets the caller has already checked the user may manage; commits once."""
    name = (name or "").strip()
    if not name:
        raise FamilyError({"name": "Give the group a name, like “The children's flats”."})
    if len(name) > MAX_NAME:
        raise FamilyError({"name": f"Keep the name under {MAX_NAME} characters."})
    if not units:
        raise FamilyError({"units": "Choose at least one wallet you manage."})
    group = WalletGroup(name=name, owner_user_id=user.id)
    group.members = [WalletGroupMember(unit_id=u.id, label="") for u in dict.fromkeys(units)]
    session.add(group)
    session.flush()
    audit.record(session, "wallet_group.created", group, new={"name": name, "units": [u.number for u in units]})
    session.commit()
    return group


def add_member(session: Session, group: WalletGroup, unit: Unit) -> None:
    """Add a wallet (already checked: the owner manages it) to the group; commits once."""
    if any(m.unit_id == unit.id for m in group.members):
        raise FamilyError({"unit_id": "That wallet is in the group already."})
    group.members.append(WalletGroupMember(unit_id=unit.id, label=""))
    audit.record(session, "wallet_group.member_added", group, estate_id=unit.estate_id,
                 new={"unit": unit.number, "estate": unit.estate.name})
    session.commit()


def remove_member(session: Session, group: WalletGroup, unit_id: int) -> None:
    """Take a wallet out of the group; commits once."""
    member = next((m for m in group.members if m.unit_id == unit_id), None)
    if member is None:
        raise FamilyError({"unit_id": "That wallet is not in the group."})
    group.members.remove(member)
    audit.record(session, "wallet_group.member_removed", group, old={"unit": member.unit.number})
    session.commit()


@dataclass
class GroupMemberView:
    unit: Unit
    actions: frozenset[str]
    dashboard: object | None  # app.reports.usage.UnitDashboard, None when access was removed


@dataclass
class GroupOverview:
    group: WalletGroup
    members: list[GroupMemberView] = field(default_factory=list)
    totals: list = field(default_factory=list)  # app.reports.wallet_totals.CommodityTotal

    @property
    def currencies(self) -> list[str]:
        return sorted({m.unit.estate.currency for m in self.members if m.dashboard is not None})


def group_overview(session: Session, group: WalletGroup, user: User) -> GroupOverview:
    """Each member's balances, days of credit left and supply, and totals per commodity."""
    from app.auth.scope import wallet_actions
    from app.reports.usage import unit_dashboard
    from app.reports.wallet_totals import commodity_totals

    overview = GroupOverview(group)
    for member in group.members:
        actions = wallet_actions(session, user, member.unit_id)
        dashboard = unit_dashboard(session, member.unit) if actions else None
        overview.members.append(GroupMemberView(member.unit, actions, dashboard))
    overview.totals = commodity_totals([m.dashboard.card for m in overview.members if m.dashboard is not None])
    return overview
