"""Demo family wallets: the family login manages two Sunbird flats and a Maseru flat, groups
them, caps a caretaker's top-ups and limits a student's spend (called from `app.demo.seed`)."""
from __future__ import annotations

from decimal import Decimal

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.models import RoleGrant, User
from app.models.families import SpendLimit, WalletGrant, WalletGroup, WalletGroupMember

FAMILY_EMAIL_ROLE = "family"


def seed_family_demo(session: Session, seeded: dict) -> None:
    """Turn the seed's family role grants into wallet grants and add a group, limits and caps; the caller commits."""
    from app.demo import _login_email

    family = session.scalar(select(User).where(User.email == _login_email(FAMILY_EMAIL_ROLE)))
    owner = session.scalar(select(User).where(User.email == _login_email("owner")))
    legacy = list(session.scalars(select(RoleGrant).where(RoleGrant.role == "family")))
    session.execute(delete(RoleGrant).where(RoleGrant.id.in_([g.id for g in legacy])))
    for old in legacy:  # what the migration does to existing family grants: view
        if old.user_id != family.id:
            session.add(WalletGrant(unit_id=old.unit_id, user_id=old.user_id, level="view", alerts_enabled=False,
                                    alert_channels=["in_app", "email"]))
    sun, mas = seeded["SUN"].units, seeded["MAS"].units
    flats = [u for u in (sun.get("A03"), sun.get("A04"), mas.get("204")) if u is not None]
    for unit in flats:
        session.add(WalletGrant(unit_id=unit.id, user_id=family.id, level="manage", alerts_enabled=True,
                                alert_channels=["in_app", "email"], low_threshold=Decimal("50")))
    if owner is not None and sun.get("A03") is not None:  # the landlord's caretaker pays, sees no history
        session.add(WalletGrant(unit_id=sun["A03"].id, user_id=owner.id, level="topup", alerts_enabled=False,
                                alert_channels=["in_app"], granted_by_user_id=family.id,
                                topup_daily_cap=Decimal("200"), topup_monthly_cap=Decimal("1000")))
    group = WalletGroup(name="The children's flats", owner_user_id=family.id)
    group.members = [WalletGroupMember(unit_id=u.id, label="") for u in flats]
    session.add(group)
    if sun.get("A04") is not None:  # the parent's own cap on one flat: the group top-up form shows it
        mine = next(g for g in session.new if isinstance(g, WalletGrant) and g.unit_id == sun["A04"].id
                    and g.user_id == family.id)
        mine.topup_daily_cap, mine.topup_monthly_cap = Decimal("500"), Decimal("2000")
    if sun.get("A03") is not None:
        session.add(SpendLimit(unit_id=sun["A03"].id, utility="electricity", daily=Decimal("60"),
                               monthly=Decimal("900")))
    session.flush()
    if sun.get("A03") is not None and sun.get("A04") is not None:
        _finished_distribution(session, family, group, [sun["A03"], sun["A04"]])


def _finished_distribution(session: Session, family: User, group: WalletGroup, flats) -> None:
    """A group top-up of R300 in equal shares, paid two days ago and credited (one transaction)."""
    from datetime import UTC, datetime, timedelta

    from app.models.families import WalletDistribution, WalletDistributionLeg
    from app.models.payments import Payment
    from app.payments.credit import credit_payment

    paid = datetime.now(UTC) - timedelta(days=2)
    payment = Payment(provider="payfast", provider_ref="DEMO-GROUP-0001", checkout_id="demogroup0001",
                      estate_id=flats[0].estate_id, utility="electricity", amount=Decimal("300.00"), currency="ZAR",
                      status="pending", created_by_user_id=family.id, payer_email=family.email, paid_at=paid,
                      created_at=paid - timedelta(minutes=3))
    session.add(payment)
    session.flush()
    session.add(WalletDistribution(
        payment_id=payment.id, group_id=group.id, rule="equal", currency="ZAR", utility="electricity",
        remainder_unit_id=flats[0].id, created_by_user_id=family.id, created_at=payment.created_at,
        legs=[WalletDistributionLeg(unit_id=u.id, estate_id=u.estate_id, amount=Decimal("150.00")) for u in flats]))
    session.flush()
    credit_payment(session, payment)
