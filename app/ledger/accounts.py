"""Opening accounts: a unit's wallet with its pockets, and an estate's system accounts."""
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Account, Estate, Unit, Wallet
from app.models.meter import UTILITIES
from app.money import UTILITY_UNITS


def pocket_commodity(estate: Estate, utility: str) -> str:
    """A pocket holds currency, or kWh/kL when the estate sells units (C1)."""
    return UTILITY_UNITS[utility] if estate.wallet_denomination == "units" else estate.currency


def open_wallet(session: Session, unit: Unit, utilities: tuple[str, ...] = UTILITIES) -> Wallet:
    """Return the unit's wallet, creating it and any missing pockets."""
    wallet = session.scalar(select(Wallet).where(Wallet.unit_id == unit.id))
    if wallet is None:
        wallet = Wallet(estate_id=unit.estate_id, unit_id=unit.id)
        session.add(wallet)
        session.flush()
    have = {pocket.utility for pocket in wallet.pockets}
    estate = unit.estate
    for utility in utilities:
        if utility not in have:
            wallet.pockets.append(Account(
                estate_id=estate.id, code=f"pocket:{unit.number}:{utility}",
                name=f"Unit {unit.number} {utility.replace('_', ' ')}", kind="pocket",
                commodity=pocket_commodity(estate, utility), utility=utility,
            ))
    session.flush()
    return wallet


def system_account(session: Session, estate: Estate, kind: str, key: str, *,
                   commodity: str | None = None, utility: str | None = None,
                   name: str | None = None) -> Account:
    """Return the estate's account `<kind>:<key>`, creating it on first use."""
    code = f"{kind}:{key}"
    account = session.scalar(select(Account).where(Account.estate_id == estate.id, Account.code == code))
    if account is None:
        account = Account(estate_id=estate.id, code=code, kind=kind, utility=utility,
                          commodity=commodity or estate.currency,
                          name=name or code.replace(":", " ").replace("_", " ").capitalize())
        session.add(account)
        session.flush()
    return account
