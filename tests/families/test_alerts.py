"""F3/F4: spend past a limit cuts supply through a spend_limit hold that lapses; managers get the
80 % warning, the limit and supply-off alerts, and low-balance alerts, once per window."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from app.extensions import db
from app.families.alerts import check_family_alerts
from app.ledger.accounts import system_account
from app.metering.credit_control import active_holds, release_expired_holds
from app.models import Account, Estate, Notification, RelayCommand, User
from app.models.families import SpendLimit, WalletGrant
from tests import factories
from tests.families.conftest import fund

NOON = datetime(2026, 11, 10, 10, 0, tzinfo=UTC)  # 12:00 in Johannesburg


def charge(committed, family, amount: str, at: datetime) -> None:
    """Bill the pocket for use, as consumption pricing does."""
    with committed() as s:
        pocket = s.get(Account, family.pocket_a)
        revenue = system_account(s, s.get(Estate, family.estate_id), "revenue", "electricity", utility="electricity")
        factories.make_topup(s, pocket, Decimal(amount) * -1, clearing=revenue, kind="consumption", occurred_at=at)


def alerts_to(s, email: str) -> list[str]:
    user_id = s.scalar(select(User.id).where(User.email == email))
    return [n.subject for n in s.scalars(select(Notification).where(
        Notification.user_id == user_id, Notification.template == "family_alert").order_by(Notification.id))]


def run(app, now):
    with app.app_context():
        sent = check_family_alerts(db.session, now)
        db.session.remove()
        return sent


def test_a_daily_limit_warns_at_80_then_holds_supply_until_midnight(app, family, committed):
    fund(committed, family.pocket_a, "500")
    with committed() as s:
        s.add(SpendLimit(unit_id=family.unit_a, utility="electricity", daily=Decimal("50"), monthly=Decimal("1000")))
    charge(committed, family, "41", NOON - timedelta(hours=1))
    run(app, NOON)
    run(app, NOON + timedelta(minutes=30))  # inside the window: nothing again
    with committed() as s:
        assert alerts_to(s, family.emails["manage"]) == ["Unit %s has used 82 %% of its daily electricity limit"
                                                        % s.get(factories.Unit, family.unit_a).number]
        assert alerts_to(s, family.emails["view"]) == [] and alerts_to(s, family.emails["topup"]) == []
        assert active_holds(s, [family.meter_a], NOON) == []
    charge(committed, family, "10", NOON + timedelta(hours=1))
    run(app, NOON + timedelta(hours=1, minutes=5))
    with committed() as s:
        subjects = alerts_to(s, family.emails["manage"])
        assert any("reached its daily electricity limit" in x for x in subjects)
        assert any(x.startswith("Supply off") for x in subjects)
        holds = active_holds(s, [family.meter_a], NOON + timedelta(hours=2))
        assert [(h.kind, h.until) for h in holds] == [("spend_limit", datetime(2026, 11, 10, 22, 0, tzinfo=UTC))]
        commands = s.scalars(select(RelayCommand).where(RelayCommand.meter_id == family.meter_a)).all()
        assert [c.state for c in commands] == ["off"]
    with committed() as s:  # the next local day: the hold lapses by itself
        assert release_expired_holds(s, datetime(2026, 11, 10, 22, 1, tzinfo=UTC)) == 1
        assert active_holds(s, [family.meter_a], datetime(2026, 11, 10, 22, 1, tzinfo=UTC)) == []


def test_low_balance_goes_to_managers_on_their_channels_once_a_day(app, family, committed):
    with committed() as s:
        grant = s.get(WalletGrant, family.grants["manage"])
        grant.low_threshold, grant.alert_channels = Decimal("100"), ["in_app", "sms"]
        s.get(WalletGrant, family.grants["view"]).low_threshold = Decimal("100")  # view: never alerted
        s.get(User, grant.user_id).person.phone = "+27821110000"
    fund(committed, family.pocket_a, "15")
    run(app, NOON)
    run(app, NOON + timedelta(hours=3))
    run(app, NOON + timedelta(days=1))  # a new day: once more
    with committed() as s:
        subjects = alerts_to(s, family.emails["manage"])
        assert subjects.count("Critical: electricity balance R 15.00 at unit %s" % s.get(
            factories.Unit, family.unit_a).number) == 4  # in-app and SMS, on two days
        user_id = s.scalar(select(User.id).where(User.email == family.emails["manage"]))
        assert {n.channel for n in s.scalars(select(Notification).where(Notification.user_id == user_id))} \
            == {"in_app", "sms"}
        assert alerts_to(s, family.emails["view"]) == []


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.integers(1, 30), min_size=1, max_size=6))
def test_spend_alerts_never_repeat_inside_a_window(app, committed, family_factory, spends):
    family = family_factory()
    with committed() as s:
        s.add(SpendLimit(unit_id=family.unit_a, utility="electricity", daily=Decimal("40")))
    for i, amount in enumerate(spends):
        charge(committed, family, str(amount), NOON + timedelta(minutes=i))
        run(app, NOON + timedelta(minutes=i, seconds=30))
    with committed() as s:
        subjects = alerts_to(s, family.emails["manage"])
    assert len(subjects) == len(set(subjects))
    spent = sum(spends)
    assert any("limit" in x for x in subjects) == (spent >= 32)
