"""O4: the vacancy rate per local month with mid-month changes (app.analytics.vacancy)."""
from datetime import UTC, datetime
from decimal import Decimal

from app.analytics.vacancy import vacancy_by_month
from app.auth.scope import unit_ids_query
from tests import factories
from tests.owner.conftest import NAIROBI, at, set_history
from tests.helpers import make_login


def nairobi(*parts) -> datetime:
    return datetime(*parts, tzinfo=NAIROBI).astimezone(UTC)


def test_vacancy_rate_counts_unit_time_in_local_months(committed):
    """Nairobi is UTC+3: a change at 02:00 local on the 1st is 23:00 UTC the day before."""
    with committed() as s:
        estate = factories.make_estate(s, timezone="Africa/Nairobi", currency="KES")
        owner = make_login(s, "owner", estate=estate)
        moved = factories.make_unit(s, estate, occupancy_status="occupied")
        moved.created_at = nairobi(2025, 1, 1)
        set_history(s, moved.id, [(nairobi(2026, 8, 1), "occupied"), (nairobi(2026, 10, 1, 2), "vacant"),
                                  (nairobi(2026, 10, 16, 2), "occupied")])
        empty = factories.make_unit(s, estate, occupancy_status="vacant")
        empty.created_at = nairobi(2025, 1, 1)
        set_history(s, empty.id, [(nairobi(2026, 7, 1), "vacant")])
        steady = factories.make_unit(s, estate, occupancy_status="occupied")  # never changed
        steady.created_at = nairobi(2025, 1, 1)
        late = factories.make_unit(s, estate, occupancy_status="maintenance")  # status unknown before its change
        late.created_at = nairobi(2025, 1, 1)
        set_history(s, late.id, [(nairobi(2026, 10, 21), "maintenance")])
        s.flush()
        months = {m.period: m for m in vacancy_by_month(s, unit_ids_query(owner, ("owner",)), "2026-11", 4,
                                                        now=nairobi(2026, 11, 11))}
    september, october, november = months["2026-09"], months["2026-10"], months["2026-11"]
    # September: moved and steady occupied, empty vacant; late unknown. Nothing of October's
    # change leaks into September (it would be an hour if months were UTC).
    assert september.unit_days == Decimal("90.0")
    assert september.percent("vacant") == Decimal("33.3")
    # October: moved vacant 15 of 31 days, empty 31 vacant, steady 31 occupied, late 11 days maintenance.
    assert october.unit_days == Decimal("104.0")
    assert october.vacancy_percent == Decimal("44.2")  # (15 + 31) / 104
    assert october.percent("maintenance") == Decimal("10.6")  # 11 / 104
    # November counts up to now (10 days per unit).
    assert november.unit_days == Decimal("40.0") and november.vacancy_percent == Decimal("25.0")
    assert months["2026-08"].vacancy_percent == Decimal("33.3")  # August: 31 vacant of 93
