"""Demo data for the agent pages (issue 15): a finished bulk top-up, a move-out with a refund, a sent notice.

Everything goes through the real paths (plan and run the batch from the agent float, `move_out`,
`send_notice`) as the demo agent, so the pages show what an agent's week leaves behind.
"""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Tenancy, User, utcnow


def seed_agent_demo(session: Session, estate, agent_email: str) -> None:
    """In `estate`: block B's occupied units topped up R100 each, one tenant moved out with refunds
    (one of them paid out), and a maintenance notice to block A. Commits."""
    from app.estates import notices, tenancies
    from app.ledger.accounts import open_wallet
    from app.payments import bulk_topup

    agent = session.scalar(select(User).where(User.email == agent_email))
    if agent is None:
        return
    rows = bulk_topup.rows_from_filter(session, estate, "electricity", "100", bulk_topup.UnitFilter(
        prefix="B", status="occupied"))
    batch = bulk_topup.plan_bulk_topup(session, estate, rows, description="December welfare top-up",
                                       user_id=agent.id)
    bulk_topup.run_bulk_topup(session, batch.id, user_id=agent.id)

    # A tenant without a login (so no demo login loses its tenancy) whose wallet is in credit moves out.
    logins = set(session.scalars(select(User.person_id).where(User.person_id.is_not(None))))
    today = utcnow().astimezone(estate.tz).date()
    for unit in sorted(estate.units, key=lambda u: u.number):
        if not unit.number.startswith("C") or unit.occupancy_status != "occupied":
            continue
        tenancy = tenancies.current_tenancy(session, unit)
        if tenancy is None or tenancy.person_id in logins or tenancy.move_in >= today:
            continue
        pockets = open_wallet(session, unit).pockets
        if not pockets or any(p.balance < 0 for p in pockets) or not any(p.balance > 0 for p in pockets):
            continue
        done = tenancies.move_out(session, agent, tenancy, today, {}, user_id=agent.id)
        if done.refund_ids:  # the first one already paid out, so the refunds page shows both states
            from app.models.moves import Refund
            tenancies.mark_refund_paid(session, agent, session.get(Refund, done.refund_ids[0]), "EFT 20261202-01")
        break

    notices.send_notice(session, estate, {
        "kind": "maintenance", "block": "A", "subject": "Hot-water plant service on Saturday",
        "message": "The heat pumps of blocks A and B are serviced on Saturday from 08:00 to 13:00. "
                   "Hot water may run cold during the morning. Questions: call the estate office on 011 555 0100.",
        "channels": ["sms", "email"], "starts_at": "", "ends_at": ""}, user_id=agent.id)
