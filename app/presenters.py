"""Jinja filters and globals: money, local times, ages, and the navigation built from grants."""
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from flask import Flask, g, has_request_context, url_for
from flask_login import current_user
from sqlalchemy import select

from app.models import utcnow
from app.money import format_amount

LAYER_NAV = [  # (role, endpoint, label) in the order the nav shows them
    ("tenant", "tenant.index", "My unit"),
    ("family", "family.index", "Family"),
    ("owner", "owner.index", "Owner"),
    ("body_corporate", "body_corporate.index", "Body corporate"),
    ("agent", "agent.index", "Agent"),
    ("utility", "utility.index", "Utility"),
    ("staff", "staff.index", "Staff"),
    ("agent", "admin.index", "Administration"),  # staff administer every estate: see nav_items
]


def money(amount: Decimal | None, commodity: str) -> str:
    return "—" if amount is None else format_amount(Decimal(amount), commodity)


def viewer_timezones() -> list[str]:
    """The timezones of the estates the signed-in person reaches (every estate for staff), once per request."""
    if not has_request_context() or not current_user.is_authenticated:
        return []
    zones = g.get("_viewer_timezones")
    if zones is None:
        from app.auth.scope import estate_ids_query
        from app.extensions import db
        from app.models import Estate

        query = select(Estate.timezone).distinct()
        if not current_user.is_staff:
            query = query.where(Estate.id.in_(estate_ids_query(current_user, current_user.roles)))
        zones = g._viewer_timezones = sorted(db.session.scalars(query))
    return zones


def _one_clock(zones: list[str], moment: datetime) -> bool:
    """Whether these zones all show the same clock time and abbreviation at `moment`."""
    shown = {(moment.astimezone(ZoneInfo(z)).utcoffset(), moment.astimezone(ZoneInfo(z)).tzname()) for z in zones}
    return len(shown) == 1


def display_timezone(timezone: str | None = None, moment: datetime | None = None) -> str:
    """The zone a time is shown in: the one given (an estate's), else the viewer's zone when all
    their estates keep one clock (Maseru and Johannesburg do), else UTC."""
    if timezone:
        return timezone
    zones = viewer_timezones()
    return zones[0] if zones and _one_clock(zones, moment or utcnow()) else "UTC"


def local_time(moment: datetime | None, timezone: str | None = None, fmt: str = "%d %b %Y %H:%M") -> str:
    """Every time a person sees: in the estate's zone, labelled when the viewer's zones differ.

    Without a zone the viewer's own is used (a tenant's estate); a clock time is labelled
    ("20:03 GMT") whenever it is not plainly on the viewer's one clock: staff across estates
    in different zones, or anyone without an estate, always know which zone a time is in.
    """
    if moment is None:
        return "never"
    zone = display_timezone(timezone, moment)
    local = moment.astimezone(ZoneInfo(zone))
    text = local.strftime(fmt)
    zones = viewer_timezones()
    if "%H" in fmt and not (zones and _one_clock([*zones, zone], moment)):
        text += f" {local.tzname()}"
    return text


def age(moment: datetime | None) -> str:
    """'4 min ago', '3 h ago', '2 days ago'."""
    if moment is None:
        return "never"
    seconds = max(0, int((utcnow() - moment).total_seconds()))
    if seconds < 90:
        return "just now"
    if seconds < 5400:
        return f"{seconds // 60} min ago"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} days ago"


def audit_change(old: dict | None, new: dict | None) -> str:
    """'status: open → locked; enabled: True → False' for the audit table."""
    old, new = old or {}, new or {}
    parts = []
    for key in list(dict.fromkeys([*old, *new])):
        if key in old and key in new:
            parts.append(f"{key}: {old[key]} → {new[key]}")
        else:
            parts.append(f"{key}: {new.get(key, old.get(key))}")
    return "; ".join(parts)


def nav_items() -> list[tuple[str, str]]:
    if not current_user.is_authenticated:
        return []
    roles = set(current_user.roles)
    return [(url_for(endpoint), label) for role, endpoint, label in LAYER_NAV
            if role in roles or (endpoint == "admin.index" and "staff" in roles)]


def install(app: Flask) -> None:
    """Register the filters and globals on the app."""
    app.add_template_filter(money, "money")
    app.add_template_filter(local_time, "local_time")
    app.add_template_filter(age, "age")
    app.add_template_global(nav_items, "nav_items")
    app.add_template_global(audit_change, "audit_change")
