"""Keys made with `flask api-key create` act as a named system actor (moves work, audit rows name
the key), and the docs page renders the document's inline code."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from app.integration import keys
from app.integration.key_actors import audit_actor
from app.models import AuditLog, Tenancy, utcnow
from tests.api.test_api_more import _metered


def test_a_cli_key_moves_tenants_as_a_named_system_actor(session, client, cli_runner):
    kit, _meter = _metered(session)
    session.commit()
    made = cli_runner.invoke(args=["api-key", "create", "Move CRM", "--estate", kit.estate.code,
                                   "--permissions", "read,manage"])
    assert made.exit_code == 0, made.output
    key = made.output.strip().splitlines()[-1]
    prefix = "_".join(key.split("_")[:3])  # mw_live_<public id>
    day = utcnow().astimezone(kit.estate.tz).date()
    body = {"person": {"full_name": "Palesa Nkosi", "email": "palesa@example.com"},
            "move_in": (day - timedelta(days=1)).isoformat(), "openings": {"electricity": "1000"}}
    moved = client.post(f"/api/v1/units/{kit.unit.id}/move-in", json=body, headers={"X-API-Key": key})
    assert moved.status_code == 201, moved.get_data(as_text=True)
    out = client.post(f"/api/v1/units/{kit.unit.id}/move-out", headers={"X-API-Key": key},
                      json={"move_out": day.isoformat(), "closings": {"electricity": "1004"}})
    assert out.status_code == 200, out.get_data(as_text=True)
    session.expire_all()
    assert session.get(Tenancy, moved.get_json()["tenancy_id"]).move_out == day
    actors = set(session.scalars(select(AuditLog.actor).where(AuditLog.estate_id == kit.estate.id,
                                                              AuditLog.actor.like("api:%"))))
    assert actors == {f"api:{prefix} (CLI key “Move CRM”)"}
    assert set(session.scalars(select(AuditLog.actor_user_id).where(AuditLog.actor.in_(actors)))) == {None}


def test_an_issued_key_still_names_its_issuer(session, client):
    from tests import factories

    kit = factories.make_estate_with_wallet(session)
    staff = factories.make_user(session, "staff")
    session.commit()
    new = keys.issue_key(session, "ops", permissions="read", issuer=staff)
    actor = audit_actor(new.row, "10.0.0.1")
    assert (actor.label, actor.user_id) == (f"api:{new.row.prefix}", staff.id)
    assert client.get(f"/api/v1/estates/{kit.estate.id}", headers={"X-API-Key": new.key}).status_code == 200


def test_the_docs_page_shows_inline_code_as_code(client):
    page = client.get("/api/v1/docs").get_data(as_text=True)
    assert "<code>X-API-Key: mw_live_…</code>" in page and "`" not in page
    assert "<code>readings:write</code>" in page  # the readings POST, declared, shows its permission
