"""T4 budget alerts: settings (with refusals), and the check that sends low, critical and high-usage
alerts once per frequency window through notify()."""
from __future__ import annotations

import html
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from app.notify.budget_alerts import check_budget_alerts, save_settings
from app.jobs import enqueue
from app.models import Account, AuditLog, Notification, Unit, User
from app.models.budget_alerts import BudgetAlertSetting
from app.models.metering import ConsumptionRollup
from app.reports.usage import local_midnight
from tests import factories
from tests.helpers import page_token

JOBURG = ZoneInfo("Africa/Johannesburg")
NOW = datetime(2026, 11, 18, 10, 0, tzinfo=JOBURG)


def settle(committed, home, frequency="daily", thresholds=None, channels=("in_app", "email"), high_usage=True):
    with committed() as s:
        save_settings(s, s.get(User, home.tenant_id), s.get(Unit, home.unit),
                      thresholds=thresholds if thresholds is not None else {"electricity": "600", "water": "1600"},
                      frequency=frequency, channels=list(channels), high_usage=high_usage)


def usual_days_and_busy_hours(committed, meter_id: int, until: datetime) -> None:
    """30 days at 2 kWh a day before `until`'s local day, and 6 kWh in the 24 hours before `until`."""
    with committed() as s:
        today = until.astimezone(JOBURG).date()
        for back in range(1, 31):
            s.add(ConsumptionRollup(meter_id=meter_id, grain="day", consumption=Decimal("2"),
                                    period_start=local_midnight(today - timedelta(days=back), JOBURG)))
        hour = until.replace(minute=0)
        for back in range(1, 25):
            s.add(ConsumptionRollup(meter_id=meter_id, grain="hour", consumption=Decimal("0.25"),
                                    period_start=hour - timedelta(hours=back)))


def check(committed, now) -> set[tuple[str, str]]:
    with committed() as s:
        return {(a.utility, a.kind) for a in check_budget_alerts(s, now)}


def spend(committed, home, amount: str) -> None:
    with committed() as s:
        factories.make_topup(s, s.get(Account, home.pocket), Decimal(amount).copy_negate(),
                             clearing=s.get(Account, home.clearing), kind="adjustment")


def test_each_alert_fires_once_per_window_and_again_after_it(home, committed):
    settle(committed, home)
    usual_days_and_busy_hours(committed, home.electricity_meter, NOW)
    assert check(committed, NOW) == {("electricity", "low"), ("water", "critical"), ("electricity", "high_usage")}
    with committed() as s:
        sent = s.scalars(select(Notification).order_by(Notification.id)).all()
        assert {(n.channel, n.template) for n in sent} == {("in_app", "budget_alert"), ("email", "budget_alert")}
        assert len(sent) == 6, "three alerts on two channels"
        subjects = {n.subject for n in sent}
        assert any("Low electricity balance: R 500.00" in t for t in subjects)
        assert any(t.startswith("Critical: water balance R 300.00") for t in subjects)
        high = next(n.body for n in sent if n.subject.startswith("High electricity use"))
        assert "6.000 kWh" in high and "200 % more" in high and "2.000 kWh a day" in high
    assert check(committed, NOW + timedelta(hours=1)) == set(), "inside the daily window nothing repeats"

    spend(committed, home, "400.00")  # R100 left: at or below 20 % of R600
    assert check(committed, NOW + timedelta(hours=2)) == {("electricity", "critical")}, \
        "critical has its own window; low is not sent again"
    assert check(committed, NOW + timedelta(hours=23)) == set()

    later = NOW + timedelta(hours=25)
    usual_days_and_busy_hours(committed, home.water_meter, later)
    with committed() as s:
        for back in range(1, 25):  # electricity stays busy too
            s.add(ConsumptionRollup(meter_id=home.electricity_meter, grain="hour", consumption=Decimal("0.5"),
                                    period_start=later.replace(minute=0) - timedelta(hours=back)))
    assert check(committed, later) == {("water", "critical"), ("electricity", "high_usage"), ("water", "high_usage")}
    assert check(committed, NOW + timedelta(hours=26, minutes=30)) == {("electricity", "critical")}


def test_weekly_frequency_waits_a_week(home, committed):
    settle(committed, home, frequency="weekly", thresholds={"electricity": "500"}, high_usage=False,
           channels=["in_app", "sms"])
    assert check(committed, NOW) == {("electricity", "low")}
    assert check(committed, NOW + timedelta(days=6, hours=23)) == set()
    assert check(committed, NOW + timedelta(days=7)) == {("electricity", "low")}
    with committed() as s:
        sms = s.scalars(select(Notification).where(Notification.channel == "sms")).all()
        assert len(sms) == 2 and {n.to_address for n in sms} == {"+27825550101"}
        assert s.scalar(select(func.count(Notification.id)).where(Notification.channel == "email")) == 0


def test_no_alerts_without_a_reason_or_after_losing_the_unit(home, committed):
    settle(committed, home, thresholds={"electricity": "100"})
    assert check(committed, NOW) == set(), "R500 is above R100 and there is no usage history"
    settle(committed, home, thresholds={"electricity": "900"})
    with committed() as s:
        user = s.get(User, home.tenant_id)
        for grant in list(user.grants):
            s.delete(grant)
    assert check(committed, NOW) == set(), "a tenant who lost the unit hears nothing more about it"


def test_job_and_cli_run_the_check(home, committed, app, cli_runner):
    settle(committed, home, thresholds={"electricity": "900"})
    with app.app_context():
        run = enqueue("budget_alerts")
        assert (run.status, run.result) == ("done", "1 budget alert(s) sent")
    result = cli_runner.invoke(args=["alerts", "check"])
    assert result.exit_code == 0 and "0 budget alert(s) sent" in result.output, result.output


def post_settings(client, url, **fields):
    token = page_token(client, url)
    data = {"csrf_token": token, "frequency": "daily", "channels": ["in_app"], "high_usage": "1",
            "threshold_electricity": "", "threshold_water": ""}
    data.update(fields)
    return client.post(url, data=data)


def test_settings_are_saved_and_bad_input_is_refused_with_nothing_saved(home, login, committed):
    client = login(home.tenant)
    url = f"/tenant/units/{home.unit}/alerts"
    for fields, message in (
            ({"threshold_electricity": "lots"}, "Enter the threshold as a number"),
            ({"threshold_water": "-5"}, "more than 0"),
            ({"threshold_electricity": "2000000"}, "at most 1 000 000"),
            ({"channels": []}, "Choose at least one way"),
            ({"channels": ["pigeon"]}, "Choose at least one way"),
            ({"frequency": "hourly"}, "Choose how often")):
        response = post_settings(client, url, **fields)
        assert response.status_code == 400, fields
        page = html.unescape(response.get_data(as_text=True))
        assert message in page and "Nothing was saved" in page
    with committed() as s:
        assert s.scalar(select(func.count(BudgetAlertSetting.id))) == 0
    response = post_settings(client, url, threshold_electricity="75,5", threshold_water="40",
                             frequency="weekly", channels=["email", "sms"], high_usage="")
    assert response.status_code == 302
    page = client.get(url).get_data(as_text=True)
    assert "Alert settings saved." in page and 'value="75.50"' in page and 'value="40.00"' in page
    with committed() as s:
        setting = s.scalar(select(BudgetAlertSetting))
        assert (setting.thresholds, setting.frequency, setting.channels, setting.high_usage) == \
            ({"electricity": "75.50", "water": "40.00"}, "weekly", ["email", "sms"], False)
        assert s.scalar(select(AuditLog.action).where(AuditLog.entity_type == "BudgetAlertSetting")) == \
            "budget_alerts.saved"
