"""Writing debts off (A4): staff move a debt they will not collect to the estate's bad-debt account.

A write-off names one debt (an arrears record, or a pocket below zero in a currency estate), an
amount up to what it owes and a reason. Up to the estate's `write_off_approval_threshold` it
is posted at once; above it, it waits for a second staff member's approval (the requester
cannot approve their own). Posting is one ledger transaction, keyed `write_off:<id>`: the
bad-debt account −amount, the debt's account +amount; a record paid off this way is closed as
"written off", and a pocket brought back up lets credit control restore supply.
"""
from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.audit import record as audit
from app.billing.arrears import pay_arrears
from app.estates.settings_catalog import setting_default
from app.ledger import Entry, post
from app.ledger.accounts import system_account
from app.models import Account, Estate, Wallet, utcnow
from app.models.arrears import ArrearsRecord
from app.models.debt import WriteOff
from app.money import MoneyError, format_amount, parse_amount
from app.settings import get_setting
from app.routing import whole_number

THRESHOLD_KEY = "write_off_approval_threshold"


class WriteOffError(ValueError):
    """A write-off that cannot be made; `errors` is keyed by field."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(errors.values()))
        self.errors = errors


def owed_by(session: Session, account: Account) -> Decimal:
    """What the debt held in this account still owes (its negative balance, positive)."""
    session.refresh(account, ["balance"])
    return max(Decimal("0"), -Decimal(account.balance))


def request_write_off(session: Session, estate: Estate, target: str, amount_text: str, reason: str, *,
                      user_id: int) -> WriteOff:
    """Write off `target` ("record:<id>" or "pocket:<account id>" of this estate); posts at once up to
    the threshold, else waits for approval. Audited; commits once."""
    errors: dict[str, str] = {}
    kind, _, raw_id = (target or "").partition(":")
    account = record = None
    target_id = whole_number(raw_id, 1)
    if kind == "record" and target_id is not None:
        record = session.get(ArrearsRecord, target_id)
        if record is None or record.estate_id != estate.id or record.status != "open":
            record = None
        account = record.account if record else None
    elif kind == "pocket" and target_id is not None:
        account = session.get(Account, target_id)
        if account is None or account.estate_id != estate.id or account.kind != "pocket":
            account = None
        elif account.commodity != estate.currency:
            errors["target"] = "a units pocket is carried to an arrears record (valued) before it is written off"
    if account is None and "target" not in errors:
        errors["target"] = "choose a debt of this estate"
    try:
        amount = parse_amount(amount_text, estate.currency)
        if amount <= 0:
            errors["amount"] = "write off more than zero"
        elif account is not None and amount > owed_by(session, account):
            errors["amount"] = f"at most what is owed, {format_amount(owed_by(session, account), estate.currency)}"
    except MoneyError as error:
        errors["amount"] = str(error)
    reason = (reason or "").strip()
    if len(reason) < 5:
        errors["reason"] = "say why the debt is written off"
    if errors:
        raise WriteOffError(errors)
    unit_id = record.unit_id if record else session.scalar(select(Wallet.unit_id).where(Wallet.id == account.wallet_id))
    write_off = WriteOff(estate_id=estate.id, unit_id=unit_id, account_id=account.id,
                         record_id=record.id if record else None, amount=amount, reason=reason[:300],
                         requested_by_user_id=user_id)
    session.add(write_off)
    session.flush()
    audit(session, "write_off.request", write_off, new={"amount": str(amount), "reason": reason[:300],
                                                        "target": target}, estate_id=estate.id)
    threshold = Decimal(str(get_setting(session, THRESHOLD_KEY, estate.id, default=setting_default(THRESHOLD_KEY))))
    if amount <= threshold:
        _post(session, estate, write_off, user_id)
    session.commit()
    return write_off


def decide_write_off(session: Session, write_off: WriteOff, approve: bool, *, user_id: int) -> WriteOff:
    """A second staff member approves (posts) or rejects a pending write-off; commits once."""
    if write_off.status != "pending":
        raise WriteOffError({"write_off": "this write-off was decided already"})
    if write_off.requested_by_user_id == user_id:
        raise WriteOffError({"write_off": "another staff member must approve a write-off you asked for"})
    estate = session.get(Estate, write_off.estate_id)
    write_off.decided_by_user_id, write_off.decided_at = user_id, utcnow()
    if approve:
        account = session.get(Account, write_off.account_id)
        if write_off.amount > owed_by(session, account):
            raise WriteOffError({"write_off": "the debt is smaller now than this write-off; ask again"})
        _post(session, estate, write_off, user_id)
    else:
        write_off.status = "rejected"
        audit(session, "write_off.reject", write_off, new={"status": "rejected"}, estate_id=estate.id)
    session.commit()
    return write_off


def _post(session: Session, estate: Estate, write_off: WriteOff, user_id: int) -> None:
    bad_debt = system_account(session, estate, "bad_debt", "written_off", name="Bad debt written off")
    key = f"write_off:{write_off.id}"
    memo = f"Written off: {write_off.reason}"[:500]
    if write_off.record_id is not None:
        record = session.get(ArrearsRecord, write_off.record_id)
        pay_arrears(session, record, write_off.amount, source=bad_debt, key=key, kind="write_off", memo=memo,
                    user_id=user_id, status_when_cleared="written_off")
    else:
        post(session, Entry(estate_id=estate.id, kind="write_off", idempotency_key=key, memo=memo,
                            legs=[(bad_debt.id, -write_off.amount), (write_off.account_id, write_off.amount)],
                            created_by_user_id=user_id))
        from app.metering.credit_control import after_pocket_change
        after_pocket_change(session, [write_off.account_id])
    from app.models import LedgerTransaction
    write_off.transaction_id = session.scalar(select(LedgerTransaction.id).where(
        LedgerTransaction.idempotency_key == key))
    write_off.status = "posted"
    audit(session, "write_off.post", write_off, new={"status": "posted", "amount": str(write_off.amount)},
          estate_id=estate.id)
