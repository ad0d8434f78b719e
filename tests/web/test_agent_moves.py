"""Browser flow of an agent (A3, A2): move a tenant in, the tenant accepts the invite, move them out, bulk top-up."""
import re
import time
from datetime import date, timedelta
from decimal import Decimal
from io import BytesIO

import pytest
from sqlalchemy import select

from app.extensions import db
from app.ledger.accounts import open_wallet
from app.models import Notification, Tenancy, utcnow
from app.models.metering import TariffVersion
from app.payments.credit import credit_payment
from app.models.payments import Payment
from app.estates.tenancies import manual_message
from app.metering.ingest import ingest
from tests import factories
from tests.helpers import csrf_from, sign_in


@pytest.fixture
def estate_kit(app, committed):
    """Estate A (flat R2/kWh) with a vacant unit and its meter read at 100; an agent of A; estate B's unit."""
    with committed() as s:
        estate = factories.make_estate(s, country="ZA")
        unit = factories.make_unit(s, estate, number="C7", occupancy_status="vacant")
        meter = factories.make_meter(s, unit, utility="electricity")
        other = factories.make_unit(s, factories.make_estate(s), number="Z1")
        s.add(TariffVersion(estate_id=estate.id, utility="electricity", effective_from=date(2020, 1, 1),
                            kind="flat", rates={"rate": "2.00"}, standing_charge=Decimal("0")))
        agent = factories.make_user(s, "agent", estate=estate)
        open_wallet(s, unit)
        s.flush()
        ingest(s, [manual_message(meter, Decimal("100"), utcnow() - timedelta(hours=2))])
        ids = {"estate": estate.id, "unit": unit.id, "meter": meter.id, "other": other.id, "agent": agent.email,
               "today": utcnow().astimezone(estate.tz).date().isoformat()}
    return ids


def test_an_agent_moves_a_tenant_in_the_tenant_signs_in_then_is_moved_out_with_a_refund(
        app, estate_kit, login, new_client, committed):
    agent = login(estate_kit["agent"])
    unit_page = agent.get(f"/agent/units/{estate_kit['unit']}").get_data(as_text=True)
    assert "Move a tenant in" in unit_page and "Enter a meter reading" in unit_page
    form = agent.get(f"/agent/units/{estate_kit['unit']}/move-in").get_data(as_text=True)
    sent = {"csrf_token": csrf_from(form), "person_id": "new", "full_name": "Naledi Sello",
            "email": "naledi@example.com", "phone": "", "move_in": estate_kit["today"], "invite": "1",
            "opening_electricity": "99"}
    refused = agent.post(f"/agent/units/{estate_kit['unit']}/move-in", data=sent)
    assert refused.status_code == 400 and "went backwards from 100 to 99" in refused.get_data(as_text=True)
    sent["opening_electricity"] = "101"
    moved = agent.post(f"/agent/units/{estate_kit['unit']}/move-in", data=sent)
    assert moved.status_code == 302
    assert "Naledi Sello moved into unit C7" in agent.get(moved.headers["Location"]).get_data(as_text=True)
    with committed() as s:
        invite = s.scalar(select(Notification).where(Notification.template == "invite",
                                                     Notification.to_address == "naledi@example.com"))
        link = re.search(r"https?://\S+/invite/\S+", invite.body).group(0)
        tenancy_id = s.scalar(select(Tenancy.id).where(Tenancy.unit_id == estate_kit["unit"]))
    tenant = new_client()
    path = "/invite/" + link.split("/invite/", 1)[1]
    page = tenant.get(path).get_data(as_text=True)
    accepted = tenant.post(path, data={"csrf_token": csrf_from(page), "password": "a long new password 1",
                                       "confirm": "a long new password 1"})
    assert accepted.status_code == 302
    assert sign_in(new_client(), "naledi@example.com", "a long new password 1").status_code == 302
    with committed() as s:
        payment = Payment(provider="eft", provider_ref="W1", unit_id=estate_kit["unit"], utility="electricity",
                          amount=Decimal("100.00"), status="to_confirm")
        s.add(payment)
        s.flush()
        credit_payment(s, payment)
    time.sleep(1.1)  # the closing reading must not share the opening one's second
    page = agent.get(f"/agent/units/{estate_kit['unit']}/move-out").get_data(as_text=True)
    out = {"csrf_token": csrf_from(page), "move_out": estate_kit["today"], "closing_electricity": "111"}
    preview = agent.post(f"/agent/units/{estate_kit['unit']}/move-out", data=out).get_data(as_text=True)
    assert "Refund R" in preview and "80.00" in preview and "Confirm move-out" in preview, re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", preview))[-1500:]  # 100 − 10 kWh at R2
    with committed() as s:
        assert s.get(Tenancy, tenancy_id).move_out is None  # the preview saved nothing
    done = agent.post(f"/agent/units/{estate_kit['unit']}/move-out", data={**out, "confirm": "1"})
    body = done.get_data(as_text=True)
    assert done.status_code == 200 and "moved out of unit C7" in body and "80.00" in body
    refunds = agent.get(f"/agent/estates/{estate_kit['estate']}/refunds").get_data(as_text=True)
    assert "Naledi Sello" in refunds and "To pay" in refunds
    assert sign_in(new_client(), "naledi@example.com", "a long new password 1").status_code != 302


def test_another_estates_unit_is_a_404_for_every_move(estate_kit, login):
    agent = login(estate_kit["agent"])
    for path in ("", "/move-in", "/move-out", "/readings"):
        assert agent.get(f"/agent/units/{estate_kit['other']}{path}").status_code == 404
    token = csrf_from(agent.get(f"/agent/units/{estate_kit['unit']}/move-in").get_data(as_text=True))
    assert agent.post(f"/agent/units/{estate_kit['other']}/move-in",
                      data={"csrf_token": token, "full_name": "X", "email": "x@example.com",
                            "move_in": estate_kit["today"]}).status_code == 404


def test_a_bulk_top_up_by_csv_confirms_the_total_then_credits(estate_kit, login, committed):
    agent = login(estate_kit["agent"])
    base = f"/agent/estates/{estate_kit['estate']}/bulk-topup"
    token = csrf_from(agent.get(base).get_data(as_text=True))
    bad = agent.post(base, data={"csrf_token": token, "mode": "filter", "utility": "electricity", "amount": "abc"})
    assert bad.status_code == 400 and "amount per wallet" in bad.get_data(as_text=True)
    planned = agent.post(base, data={"csrf_token": token, "mode": "csv",
                                     "file": (BytesIO(b"unit,utility,amount\nC7,electricity,40\nQQ,water,5\n"),
                                              "t.csv")}, content_type="multipart/form-data")
    assert planned.status_code == 302
    confirm = agent.get(planned.headers["Location"]).get_data(as_text=True)
    assert "Credit 1 wallet with R" in confirm and "not a unit of" in confirm
    run_url = planned.headers["Location"] + "/run"
    for _ in range(2):
        assert agent.post(run_url, data={"csrf_token": csrf_from(confirm)}).status_code == 302
    result = agent.get(planned.headers["Location"]).get_data(as_text=True)
    assert "Credited" in result
    with committed() as s:
        from app.models import Unit
        pocket = open_wallet(s, s.get(Unit, estate_kit["unit"])).pocket("electricity")
        assert pocket.balance == Decimal("40.00")
