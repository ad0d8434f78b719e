"""Opening accounts: a unit's wallet with its pockets, and an estate's system accounts.

Pockets open on demand (C1): for the utilities the unit has meters of, or when something
posts to one (a top-up, a charge, a levy). A unit is never given pockets it cannot use.
"""
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Account, Estate, Meter, Posting, Unit, Wallet
from app.models.meter import UTILITIES
from app.money import UTILITY_UNITS


def pocket_commodity(estate: Estate, utility: str) -> str:
    """A pocket holds currency, or kWh/kL when the estate sells units (C1)."""
    return UTILITY_UNITS[utility] if estate.wallet_denomination == "units" else estate.currency


def metered_utilities(session: Session, unit_id: int) -> tuple[str, ...]:
    """The utilities the unit has a meter of, in pocket order."""
    found = set(session.scalars(select(Meter.utility).where(Meter.unit_id == unit_id)))
    return tuple(utility for utility in UTILITIES if utility in found)


def idle_pocket_ids(session: Session, account_ids: Iterable[int]) -> set[int]:
    """Of these pockets, the ones nothing was ever posted to."""
    ids = set(account_ids)
    if not ids:
        return set()
    posted = set(session.scalars(select(Posting.account_id).where(Posting.account_id.in_(ids)).distinct()))
    return ids - posted


def open_wallet(session: Session, unit: Unit, utilities: tuple[str, ...] | None = None) -> Wallet:
    """Return the unit's wallet, creating it and the named pockets (default: its metered ones)."""
    if utilities is None:
        utilities = metered_utilities(session, unit.id)
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


OWNER_POCKET_UTILITIES = ("levy",)  # besides the metered utilities


def owner_pocket(session: Session, unit: Unit, utility: str) -> Account:
    """The unit owner's own pocket for `utility`, opened on first use (never in the unit's wallet).

    Levies are the owner's (sectional title law), and consumption while the unit stands vacant
    is billed to the owner, so neither touches the wallet a tenant sees or a move-in resets.
    The pocket belongs to the unit's ownership: whoever owns the unit sees and tops it up.
    "levy" pockets hold money; a metered utility's pocket holds what the unit's wallet would.
    """
    if utility not in UTILITIES and utility not in OWNER_POCKET_UTILITIES:
        raise ValueError(f"no owner pocket for {utility!r}")
    estate = unit.estate
    commodity = estate.currency if utility in OWNER_POCKET_UTILITIES else pocket_commodity(estate, utility)
    return system_account(session, estate, "owner_pocket", f"{unit.number}:{utility}", commodity=commodity,
                          utility=utility, name=f"Owner of unit {unit.number} {utility.replace('_', ' ')}")
