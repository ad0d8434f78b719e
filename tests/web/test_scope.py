"""Object-level authorization, proven by a sweep over every route in app.url_map (X1).

The routes are read from the app, not listed here: a new route with an id parameter is
swept automatically, and one whose parameters the sweep cannot fill fails
`test_the_sweep_understands_every_route_parameter` until the sweep is taught about it.
"""
from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from flask import url_for
from werkzeug.routing import Rule

from app import create_app
from app.models import JobRun
from app.models.people import ROLES
from tests.helpers import csrf_from

_APP = create_app("test")  # only its url_map is read; create_app does no I/O
RULES: list[Rule] = sorted(_APP.url_map.iter_rules(), key=lambda r: (r.rule, r.endpoint))

# Parameters that name a scoped object, and where the sweep takes their values from.
ID_PARAMETERS = {"unit_id", "estate_id", "run_id", "tx_id"}  # tx_id: a transaction on the unit's pockets
ID_PARAMETERS |= {"meter_id"}  # a meter on the unit swept (so in its estate): meter_on()
ID_PARAMETERS |= {"person_id"}  # a person registered to the estate (admin People pages)
ID_PARAMETERS |= {"import_id"}  # an import (ImportBatch) of the estate, made the first time it is asked for
ID_PARAMETERS |= {"levy_id"}  # a levy definition of the estate (body corporate levies): levy_of()
ID_PARAMETERS |= {"batch_id"}  # a bulk top-up (BulkTopup) of the estate, made the first time it is asked for
ID_PARAMETERS |= {"task_id", "plan_id"}  # arrears (issue 16): an escalation task of the estate, a plan of the unit
ID_PARAMETERS |= {"notice_id"}  # an agent's notice (Notice) of the estate (issue 15), made the first time it is asked for
# Other parameters the sweep knows how to fill (with a harmless valid value).
PLAIN_VALUES = {"name": "credit_control", "period": "2026-01",
                "uisp_client_id": 1}  # staff-only UISP copy: gated by the staff blueprint
# Staff-only metering objects (alerts, API keys, tariff versions): gated by the staff
# blueprint; every other role's 404 on them is tested in tests/metering/test_meter_pages.py.
PLAIN_VALUES |= {"alert_id": 1, "key_id": 1, "version_id": 1}
# A receipt number names a ledger entry or vendor payment of the viewer's units (tenant only):
# another unit's or tenancy's receipt is 404, tested in tests/tenant/test_payments_tenancy.py.
PLAIN_VALUES |= {"receipt_number": "T1"}
PLAIN_VALUES |= {"kind": "units"}  # an import kind (admin imports templates): a name, not an object
# Staff corrections (reversal requests): gated by the staff blueprint; tests/payments/test_corrections.py.
PLAIN_VALUES |= {"correction_id": 1}
# A job kind names a registered job (staff Jobs screen), not an object of any estate.
PLAIN_VALUES |= {"job_kind": "ledger_verify"}
# Family wallet groups belong to the person who made them, grants to a unit already in the
# path: tests/families/test_family_pages.py (another's group is 404, a foreign grant id is 404).
PLAIN_VALUES |= {"group_id": 1, "grant_id": 1}
# Staff write-offs of debts (arrears, issue 16): staff only (404 to agents); tests/billing/test_write_offs.py.
PLAIN_VALUES |= {"write_off_id": 1}
# Settlement runs, lines, parties and reconciliation days (issue 20): staff-only, gated by the staff
# blueprint; tests/web/test_settlement_pages.py checks a missing one is 404.
PLAIN_VALUES |= {"settlement_run_id": 1, "line_id": 1, "party_id": 1, "day_text": "2026-01-01"}
# Emission factors (issue 19, carbon): staff-only, gated by the staff blueprint; tests/utility/test_carbon.py.
PLAIN_VALUES |= {"factor_id": 1}
# Routes that are public on purpose (their parameters are not object ids).
PUBLIC_ENDPOINTS = {"static", "auth.login", "auth.accept_invite", "health.healthz", "health.metrics"}
PUBLIC_ENDPOINTS |= {"auth.forgot_password", "auth.reset_password"}  # tests/web/test_accounts.py
PUBLIC_ENDPOINTS |= {"webhooks.payfast_itn", "webhooks.sms_gateway"}  # own auth; tests/payments
PUBLIC_ENDPOINTS |= {"readings_api.post_readings"}  # X-API-Key auth; tests/metering
PUBLIC_ENDPOINTS |= {"i18n.switch_language"}  # visitors choose a language too; tests/i18n
# Routes outside the layer blueprints that take an id, and how each is checked.
NON_LAYER_ID_ENDPOINTS = {"portal.job_progress"}  # test_job_progress_is_only_for_its_starter
# Issue 21: the integration API authenticates by key, not login; its scope (another estate's id
# is 404) is swept per key in tests/api/test_integration_api.py. Webhook subscriptions and their
# deliveries (staff and agent pages) are scoped in tests/api/test_webhooks_out.py.
PUBLIC_ENDPOINTS |= {r.endpoint for r in RULES if r.endpoint.startswith("api_v1.")}
NON_LAYER_ID_ENDPOINTS |= {r.endpoint for r in RULES if r.endpoint.startswith("api_v1.")}
PLAIN_VALUES |= {"endpoint_id": 1, "delivery_id": 1, "serial": "1"}
# Issue 22: historical backfills are staff-only (staff blueprint; tests/sources/test_backfill.py: unknown id 404).
PLAIN_VALUES |= {"backfill_id": 1}
# Report subscriptions belong to their user: another's id is 404 (tests/reports/test_subscriptions.py).
NON_LAYER_ID_ENDPOINTS |= {"subscriptions.cancel_subscription"}
PLAIN_VALUES |= {"subscription_id": 1}
UNIT_SCOPED_ROLES = {"tenant", "owner", "family"}  # the world grants these on unit A only


# Blueprints gated by a role they are not named after (app/layers/admin: staff and agents).
GATED_BY = {"admin": "agent"}


def layer_of(rule: Rule) -> str | None:
    """The role a rule's blueprint is gated by (its name, or GATED_BY), if it is a layer."""
    blueprint = rule.endpoint.split(".", 1)[0]
    blueprint = GATED_BY.get(blueprint, blueprint)
    return blueprint if blueprint in ROLES else None


def params_of(rule: Rule) -> set[str]:
    return set(rule.arguments)


def id_rules(method: str) -> list[Rule]:
    return [r for r in RULES if method in r.methods and params_of(r) & ID_PARAMETERS
            and r.endpoint not in NON_LAYER_ID_ENDPOINTS]


GET_ID_RULES = id_rules("GET")
POST_ID_RULES = id_rules("POST")
LAYER_GET_RULES_WITHOUT_PARAMS = [r for r in RULES if "GET" in r.methods and layer_of(r) and not r.arguments]
LAYERS = sorted({layer_of(r) for r in RULES if layer_of(r)})


def rule_id(rule: Rule) -> str:
    return f"{'+'.join(sorted(rule.methods - {'HEAD', 'OPTIONS'}))} {rule.rule}"


def build(app, rule: Rule, *, unit: int, estate: int, run: int | None = None) -> str:
    values = {}
    for name in rule.arguments:
        if name == "unit_id":
            values[name] = unit
        elif name == "estate_id":
            values[name] = estate
        elif name == "run_id":
            values[name] = run
        elif name == "tx_id":
            values[name] = transaction_on(app, unit)
        elif name == "meter_id":
            values[name] = meter_on(app, unit)
        elif name == "person_id":
            values[name] = person_of(app, estate)
        elif name == "import_id":
            values[name] = import_of(app, estate)
        elif name == "levy_id":
            values[name] = levy_of(app, estate)
        elif name == "batch_id":
            values[name] = bulk_topup_of(app, estate)
        elif name == "task_id":  # arrears (issue 16)
            values[name] = arrears_task_of(app, estate)
        elif name == "plan_id":  # arrears (issue 16)
            values[name] = payment_plan_of(app, unit)
        elif name == "notice_id":  # agents' notices (issue 15)
            values[name] = notice_of(app, estate)
        elif name in PLAIN_VALUES:
            values[name] = PLAIN_VALUES[name]
        else:
            pytest.fail(f"{rule.rule}: the scope sweep does not know how to fill <{name}>; "
                        "teach tests/web/test_scope.py about it")
    with app.test_request_context():
        return url_for(rule.endpoint, **values)


def transaction_on(app, unit_id: int) -> int:
    """A transaction on the unit's electricity pocket (a top-up made the first time it is asked for)."""
    from sqlalchemy import select

    from app.extensions import db
    from app.models import Account, Posting, Wallet
    from tests.factories import make_topup

    with app.app_context():
        pocket = db.session.scalar(select(Account).join(Wallet, Wallet.id == Account.wallet_id).where(
            Wallet.unit_id == unit_id, Account.utility == "electricity"))
        if pocket is None:
            return unit_id  # no such unit: any id is as missing as the unit
        found = db.session.scalar(select(Posting.transaction_id).where(Posting.account_id == pocket.id).limit(1))
        if found is None:
            found = make_topup(db.session, pocket, "1.00").transaction_id
            db.session.commit()
        db.session.remove()
        return found


def meter_on(app, unit_id: int) -> int:
    """A meter on the unit (an electricity meter made the first time it is asked for)."""
    from sqlalchemy import select

    from app.extensions import db
    from app.models import Meter, Unit
    from tests.factories import make_meter

    with app.app_context():
        unit = db.session.get(Unit, unit_id) if 0 < unit_id < 2**31 else None
        if unit is None:
            return unit_id  # no such unit: any id is as missing as the unit
        found = db.session.scalar(select(Meter.id).where(Meter.unit_id == unit_id).limit(1))
        if found is None:
            found = make_meter(db.session, unit).id
            db.session.commit()
        db.session.remove()
        return found


def person_of(app, estate_id: int) -> int:
    """A person registered to the estate (made the first time it is asked for)."""
    from sqlalchemy import select

    from app.extensions import db
    from app.models import Estate, Person

    with app.app_context():
        if db.session.get(Estate, estate_id) is None:
            db.session.remove()
            return estate_id  # no such estate: any id is as missing as the estate
        found = db.session.scalar(select(Person.id).where(Person.estate_id == estate_id).limit(1))
        if found is None:
            person = Person(full_name=f"Sweep person {estate_id}", phone=f"+2782{estate_id:07d}",
                            estate_id=estate_id)
            db.session.add(person)
            db.session.commit()
            found = person.id
        db.session.remove()
        return found


def import_of(app, estate_id: int) -> int:
    """An import of the estate (a staged one made the first time it is asked for)."""
    from sqlalchemy import select

    from app.extensions import db
    from app.models import Estate, ImportBatch

    with app.app_context():
        if db.session.get(Estate, estate_id) is None:
            return estate_id  # no such estate: any id is as missing as the estate
        found = db.session.scalar(select(ImportBatch.id).where(ImportBatch.estate_id == estate_id).limit(1))
        if found is None:
            batch = ImportBatch(estate_id=estate_id, kind="units", file_name="sweep.csv", sha256="0" * 64,
                                status="staged", ignored_columns=[])
            db.session.add(batch)
            db.session.commit()
            found = batch.id
        db.session.remove()
        return found


def levy_of(app, estate_id: int) -> int:
    """A levy definition of the estate (made the first time it is asked for)."""
    from decimal import Decimal

    from sqlalchemy import select

    from app.extensions import db
    from app.models import Estate, LevyDefinition

    with app.app_context():
        if db.session.get(Estate, estate_id) is None:
            return estate_id  # no such estate: any id is as missing as the estate
        found = db.session.scalar(select(LevyDefinition.id).where(LevyDefinition.estate_id == estate_id).limit(1))
        if found is None:
            levy = LevyDefinition(estate_id=estate_id, name="Sweep levy", amount=Decimal("100"), frequency="monthly",
                                  allocation="equal", effective_from="2026-01")
            db.session.add(levy)
            db.session.commit()
            found = levy.id
        db.session.remove()
        return found


def bulk_topup_of(app, estate_id: int) -> int:
    """A bulk top-up of the estate (a planned, empty one made the first time it is asked for)."""
    from sqlalchemy import select

    from app.extensions import db
    from app.models import Estate
    from app.models.moves import BulkTopup

    with app.app_context():
        if db.session.get(Estate, estate_id) is None:
            return estate_id  # no such estate: any id is as missing as the estate
        found = db.session.scalar(select(BulkTopup.id).where(BulkTopup.estate_id == estate_id).limit(1))
        if found is None:
            batch = BulkTopup(estate_id=estate_id, rows=[], skipped=[])
            db.session.add(batch)
            db.session.commit()
            found = batch.id
        db.session.remove()
        return found


def notice_of(app, estate_id: int) -> int:
    """A notice of the estate (a sent one to nobody, made the first time it is asked for)."""
    from sqlalchemy import select

    from app.extensions import db
    from app.models import Estate
    from app.models.notices import Notice

    with app.app_context():
        if db.session.get(Estate, estate_id) is None:
            return estate_id  # no such estate: any id is as missing as the estate
        found = db.session.scalar(select(Notice.id).where(Notice.estate_id == estate_id).limit(1))
        if found is None:
            notice = Notice(estate_id=estate_id, kind="outage", subject="Sweep", message="Sweep", status="sent")
            db.session.add(notice)
            db.session.commit()
            found = notice.id
        db.session.remove()
        return found


def arrears_task_of(app, estate_id: int) -> int:
    """An escalation task on a unit of the estate (arrears, issue 16), made the first time it is asked for."""
    from datetime import date

    from sqlalchemy import select

    from app.extensions import db
    from app.models import Unit
    from app.models.debt import ArrearsEpisode, ArrearsTask

    with app.app_context():
        unit = db.session.scalar(select(Unit).where(Unit.estate_id == estate_id).limit(1)) \
            if 0 < estate_id < 2**31 else None
        if unit is None:
            return estate_id  # no such estate: any id is as missing as the estate
        found = db.session.scalar(select(ArrearsTask.id).where(ArrearsTask.estate_id == estate_id).limit(1))
        if found is None:
            episode = ArrearsEpisode(estate_id=estate_id, unit_id=unit.id, since=date(2026, 1, 1))
            db.session.add(episode)
            db.session.flush()
            task = ArrearsTask(estate_id=estate_id, unit_id=unit.id, episode_id=episode.id, title="Sweep task")
            db.session.add(task)
            db.session.commit()
            found = task.id
        db.session.remove()
        return found


def payment_plan_of(app, unit_id: int) -> int:
    """A payment plan of the unit (arrears, issue 16), made the first time it is asked for."""
    from datetime import date
    from decimal import Decimal

    from sqlalchemy import select

    from app.extensions import db
    from app.models import Unit
    from app.models.debt import PaymentPlan

    with app.app_context():
        unit = db.session.get(Unit, unit_id) if 0 < unit_id < 2**31 else None
        if unit is None:
            return unit_id
        found = db.session.scalar(select(PaymentPlan.id).where(PaymentPlan.unit_id == unit_id).limit(1))
        if found is None:
            plan = PaymentPlan(estate_id=unit.estate_id, unit_id=unit.id, instalment=Decimal("10"),
                               frequency="monthly", starts_on=date(2026, 1, 1))
            db.session.add(plan)
            db.session.commit()
            found = plan.id
        db.session.remove()
        return found


def own_ids(world) -> dict:
    return {"unit": world.unit_a, "estate": world.estate1}


def foreign_ids(world) -> dict:
    return {"unit": world.unit_b, "estate": world.estate2}


# --- the sweep covers everything --------------------------------------------------------

def test_the_sweep_understands_every_route_parameter():
    problems = []
    for rule in RULES:
        if rule.endpoint in PUBLIC_ENDPOINTS:
            continue
        for name in rule.arguments:
            if name not in ID_PARAMETERS and name not in PLAIN_VALUES:
                problems.append(f"{rule.rule} ({rule.endpoint}) has <{name}>")
        if params_of(rule) & ID_PARAMETERS and not layer_of(rule) \
                and rule.endpoint not in NON_LAYER_ID_ENDPOINTS:
            problems.append(f"{rule.rule} ({rule.endpoint}) takes an id outside the layer "
                            "blueprints; add a scope test for it")
    assert not problems, "routes the scope sweep does not cover:\n" + "\n".join(problems)


def test_the_sweep_found_the_routes_it_must_cover():
    """Guards the derivation itself: if it found nothing, the sweep would prove nothing."""
    endpoints = {r.endpoint for r in GET_ID_RULES}
    assert {"tenant.unit", "owner.unit", "family.unit", "agent.estate", "utility.estate",
            "body_corporate.estate", "admin.estate"} <= endpoints
    assert {"staff.set_feature"} <= {r.endpoint for r in POST_ID_RULES}
    assert set(LAYERS) == {"tenant", "owner", "family", "body_corporate", "agent", "utility", "staff"}


# --- GET routes with an id --------------------------------------------------------------

@pytest.mark.parametrize("rule", GET_ID_RULES, ids=rule_id)
def test_layer_user_sees_only_their_own_objects(app, world, login, rule):
    role = layer_of(rule)
    client = login(world.emails[role])
    own = build(app, rule, **own_ids(world))
    assert client.get(own).status_code == 200, f"{role} should see {own}"
    if role == "staff":
        return  # staff see every estate: test_staff_see_every_object
    foreign = build(app, rule, **foreign_ids(world))
    assert client.get(foreign).status_code == 404, f"{role} must not see {foreign}"
    missing = build(app, rule, unit=987654, estate=987654)
    assert client.get(missing).status_code == 404
    if "unit_id" in rule.arguments:
        neighbour = build(app, rule, unit=world.unit_a2, estate=world.estate1)
        expected = 404 if role in UNIT_SCOPED_ROLES else 200
        assert client.get(neighbour).status_code == expected, \
            f"{role} granted {'unit A' if expected == 404 else 'estate 1'} on unit A2 {neighbour}"


@pytest.mark.parametrize("rule", GET_ID_RULES, ids=rule_id)
def test_tenant_of_unit_a_gets_404_outside_their_unit(app, world, login, rule):
    client = login(world.emails["tenant"])
    foreign = build(app, rule, **foreign_ids(world))
    assert client.get(foreign).status_code == 404, foreign
    own = build(app, rule, **own_ids(world))
    expected = 200 if layer_of(rule) == "tenant" else 404
    assert client.get(own).status_code == expected, own


@pytest.mark.parametrize("rule", GET_ID_RULES, ids=rule_id)
def test_tenant_of_estate_2_gets_404_for_estate_1(app, world, login, rule):
    client = login(world.tenant_b)
    assert client.get(build(app, rule, **own_ids(world))).status_code == 404


@pytest.mark.parametrize("rule", GET_ID_RULES, ids=rule_id)
def test_staff_see_every_object(app, world, login, rule):
    client = login(world.emails["staff"])
    for ids in (own_ids(world), foreign_ids(world)):
        url = build(app, rule, **ids)
        assert client.get(url).status_code == 200, url


# --- POST routes with an id -------------------------------------------------------------

@pytest.mark.parametrize("rule", POST_ID_RULES, ids=rule_id)
def test_post_routes_answer_404_outside_the_users_grants(app, world, login, rule):
    """With a valid CSRF token, every other role is refused with 404 (and so is the own
    layer for another estate's objects); the objects are not touched."""
    layer = layer_of(rule)
    for role in sorted(world.emails):
        if role in (layer, "staff"):
            continue
        client = login(world.emails[role])
        token = csrf_from(client.get("/notifications").get_data(as_text=True))
        for ids in (own_ids(world), foreign_ids(world)):
            url = build(app, rule, **ids)
            response = client.post(url, data={"enabled": "1", "status": "locked"},
                                   headers={"X-CSRFToken": token})
            assert response.status_code == 404, f"{role} POST {url} -> {response.status_code}"
    if layer != "staff":
        client = login(world.emails[layer])
        token = csrf_from(client.get("/notifications").get_data(as_text=True))
        url = build(app, rule, **foreign_ids(world))
        assert client.post(url, headers={"X-CSRFToken": token}).status_code == 404


# --- layers and roles -------------------------------------------------------------------

@pytest.mark.parametrize("layer", LAYERS)
def test_layer_pages_answer_404_to_users_without_the_role(app, world, login, layer):
    rules = [r for r in LAYER_GET_RULES_WITHOUT_PARAMS if layer_of(r) == layer]
    assert any(r.endpoint == f"{layer}.index" for r in rules)
    for role in sorted(world.emails):
        if role in (layer, "staff"):
            continue
        client = login(world.emails[role])
        for rule in rules:
            url = build(app, rule, unit=0, estate=0)
            assert client.get(url).status_code == 404, f"{role} on {url}"


@pytest.mark.parametrize("layer", LAYERS)
def test_layer_index_opens_for_its_role_and_for_staff(world, login, app, layer):
    for role in {layer, "staff"}:
        client = login(world.emails[role])
        with app.test_request_context():
            url = url_for(f"{layer}.index")
        assert client.get(url).status_code == 200, f"{role} on {url}"


def test_staff_open_every_page_without_parameters(app, world, login):
    client = login(world.emails["staff"])
    for rule in RULES:
        if "GET" in rule.methods and not rule.arguments and rule.endpoint not in PUBLIC_ENDPOINTS | {"auth.home"}:
            url = build(app, rule, unit=0, estate=0)
            assert client.get(url).status_code == 200, url


ANONYMOUS_RULES = [r for r in RULES if "GET" in r.methods and r.endpoint not in PUBLIC_ENDPOINTS]


@pytest.mark.parametrize("rule", ANONYMOUS_RULES, ids=rule_id)
def test_anonymous_visitors_are_sent_to_login(app, world, new_client, rule):
    url = build(app, rule, unit=world.unit_a, estate=world.estate1, run=1)
    response = new_client().get(url)
    assert response.status_code == 302, url
    assert urlsplit(response.headers["Location"]).path == "/login"


@pytest.mark.parametrize("rule", [r for r in RULES if "POST" in r.methods and r.endpoint not in PUBLIC_ENDPOINTS],
                         ids=rule_id)
def test_anonymous_posts_are_sent_to_login(app, world, new_client, rule):
    client = new_client()
    token = csrf_from(client.get("/login").get_data(as_text=True))
    url = build(app, rule, unit=world.unit_a, estate=world.estate1, run=1)
    response = client.post(url, data={"enabled": "1"}, headers={"X-CSRFToken": token})
    assert response.status_code == 302, url
    assert urlsplit(response.headers["Location"]).path == "/login"


# --- job progress -----------------------------------------------------------------------

def test_job_progress_is_only_for_its_starter(app, world, login, committed):
    from sqlalchemy import select

    from app.models import User

    with committed() as s:
        def user_id(email):
            return s.scalar(select(User.id).where(User.email == email))
        mine = JobRun(kind="ledger_verify", target="mine", status="done", result="LEDGER OK",
                      created_by_user_id=user_id(world.emails["tenant"]))
        theirs = JobRun(kind="ledger_verify", target="theirs", status="running",
                        created_by_user_id=user_id(world.tenant_b))
        system = JobRun(kind="ledger_verify", target="system", status="done")
        s.add_all([mine, theirs, system])
        s.flush()
        ids = mine.id, theirs.id, system.id
    mine, theirs, system = ids
    with app.test_request_context():
        url = {run: url_for("portal.job_progress", run_id=run) for run in (*ids, 987654)}

    tenant = login(world.emails["tenant"])
    response = tenant.get(url[mine])
    assert response.status_code == 200 and "LEDGER OK" in response.get_data(as_text=True)
    assert tenant.get(url[theirs]).status_code == 404
    assert tenant.get(url[system]).status_code == 404
    assert tenant.get(url[987654]).status_code == 404

    staff = login(world.emails["staff"])
    for run in ids:
        assert staff.get(url[run]).status_code == 200


# --- ids beyond what their column holds -------------------------------------------------

def _id_converters(rule: Rule) -> dict:
    from werkzeug.routing.converters import IntegerConverter  # Flask's own and ours

    return {name: converter for name, converter in rule._converters.items()
            if isinstance(converter, IntegerConverter)}


OVERSIZED_ID_RULES = [r for r in RULES if _id_converters(r) and r.endpoint != "static"]


def test_every_id_route_is_bounded_by_its_column():
    """Guards the sweep below: every `<int:...>` route found, bigint ids only where the column is."""
    from app.routing import BigIntegerIdConverter, IntegerIdConverter

    assert {"tenant.unit", "portal.job_progress", "staff.meter"} <= {r.endpoint for r in OVERSIZED_ID_RULES}
    bigints = {(r.endpoint, name) for r in OVERSIZED_ID_RULES
               for name, converter in _id_converters(r).items() if isinstance(converter, BigIntegerIdConverter)}
    assert bigints == {("tenant.transaction", "tx_id"), ("staff.acknowledge_alert", "alert_id"),
                       ("staff.transaction", "tx_id"), ("staff.reverse_transaction", "tx_id")}
    assert all(isinstance(c, IntegerIdConverter) for r in OVERSIZED_ID_RULES for c in _id_converters(r).values())


@pytest.mark.parametrize("rule", OVERSIZED_ID_RULES, ids=rule_id)
def test_an_id_beyond_its_column_is_404_not_500(app, world, login, rule):
    """2**31 on an `integer` id, 2**63 on a `bigint` one: nothing has that id, so 404."""
    from app.routing import INTEGER_MAX, BigIntegerIdConverter

    client = login(world.emails[layer_of(rule) or "staff"])
    token = csrf_from(client.get("/notifications").get_data(as_text=True))
    converters = _id_converters(rule)
    for name in converters:
        values = {arg: (PLAIN_VALUES.get(arg) or 1) for arg in rule.arguments}
        values[name] = 2**63 if isinstance(converters[name], BigIntegerIdConverter) else INTEGER_MAX + 1
        with app.test_request_context():
            url = url_for(rule.endpoint, **values)
        method = "GET" if "GET" in rule.methods else "POST"
        response = client.open(url, method=method, headers={"X-CSRFToken": token})
        assert response.status_code == 404, f"{method} {url} -> {response.status_code}"


def test_an_oversized_id_from_a_form_or_query_string_is_404_at_the_scope_check(app, world, login):
    """Ids that come in forms and query strings reach the scope helpers, which bound them too."""
    owner = login(world.emails["owner"])
    assert owner.get("/owner/?estate=2147483648").status_code == 404
    tenant = login(world.emails["tenant"])
    token = csrf_from(tenant.get("/notifications").get_data(as_text=True))
    response = tenant.post("/tenant/topup", data={"unit_id": "2147483648", "utility": "electricity",
                                                  "amount": "100", "csrf_token": token})
    assert response.status_code == 404
