"""Tariff schedules (C5): new versions from the staff form, their impact report, advance notices
and the job that switches future-dated versions on.

- `create_version()` validates a staff form (bands ascending with an open-ended last band,
  time-of-use windows tiling the day without overlap, the effective date at least the notice
  period ahead and not in a locked financial period) and saves, audits and commits it.
- `impact_report()` prices each unit's last-month consumption (from the roll-ups, never raw
  readings) under the version it replaces and under the new one.
- `run_schedule()` (job `tariff_schedule`, hourly from workers/cron.py) sends each version's
  notice once, `tariff_notice_days` (setting, default 30) before its local effective date, to
  the current tenants and owners of the estate's units, and marks versions whose date has come
  as activated, with an audit row. Billing never waits for it: prices are chosen by date
  (`tariffs.price_on`), so a late job cannot bill at a stale price.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from flask_babel.speaklater import LazyString
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from app import audit
from app.billing import BillingError
from app.billing.tariffs import Price, charge, class_versions
from app.estates.settings_catalog import setting_default
from app.settings import get_setting
from app.jobs import job
from app.labels import LABELS, label
from app.models import Estate, FinancialPeriod, Meter, Person, Tenancy, Unit, User, UnitOwnership, utcnow
from app.models.meter import UTILITIES
from app.models.metering import TARIFF_KINDS, ConsumptionRollup, TariffVersion
from app.models.tariff import TariffClass
from app.money import UTILITY_UNITS, MoneyError, format_amount, parse_amount, quantize

NOTICE_DAYS_SETTING = "tariff_notice_days"
DEFAULT_NOTICE_DAYS: int = setting_default(NOTICE_DAYS_SETTING)
RATE_PLACES = 6  # a rate per kWh or kL may be finer than a cent
FORM_ROWS = 5  # block bands and time-of-use windows offered on the form
KIND_LABELS = LABELS["tariff"]  # one place for labels: app/labels.py


class TariffFormError(BillingError):
    """A tariff version the form cannot save; `errors` holds every problem found, by form field."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(errors.values()))
        self.errors = errors


def _refuse(errors: dict[str, str], field: str, message: str) -> None:
    """Add a problem with one form field (a field with several keeps them all, in order)."""
    errors[field] = f"{errors[field]} {message}" if field in errors else message


# --- the form ------------------------------------------------------------------------------


def notice_days(session: Session, estate_id: int) -> int:
    """How many days ahead residents hear of a new tariff (per estate, else global, else 30)."""
    try:
        return max(int(get_setting(session, NOTICE_DAYS_SETTING, estate_id, default=DEFAULT_NOTICE_DAYS)), 0)
    except (TypeError, ValueError):
        return DEFAULT_NOTICE_DAYS


def earliest_effective_date(session: Session, estate: Estate, now: datetime | None = None) -> date:
    """The first local date a new version may start on: today plus the notice period."""
    return (now or utcnow()).astimezone(estate.tz).date() + timedelta(days=notice_days(session, estate.id))


def _number(text: str | None, label: str, errors: dict[str, str], field: str, *,
            required: bool = True, positive: bool = True) -> Decimal | None:
    text = (text or "").strip()
    if not text:
        if required:
            _refuse(errors, field, f"{label} is required.")
        return None
    try:
        value = parse_amount(text, "ZAR", places=RATE_PLACES, allow_negative=True)
    except MoneyError as error:
        _refuse(errors, field, f"{label} must be a number, not “{text}”: {error}.")
        return None
    if value < 0 or (positive and value == 0):
        _refuse(errors, field, f"{label} must be {'above' if positive else 'at least'} zero.")
        return None
    return value


def _minutes(text: str, label: str, errors: dict[str, str]) -> int | None:
    try:
        moment = time.fromisoformat(text.strip())
    except ValueError:
        _refuse(errors, "windows", f"{label} must be a time like 06:00, not “{text.strip()}”.")
        return None
    return moment.hour * 60 + moment.minute


def _rows(form: Mapping, *names: str) -> list[tuple[str, ...]]:
    """Repeated form fields zipped into rows; rows left wholly empty are dropped."""
    columns = [form.getlist(name) if hasattr(form, "getlist") else list(form.get(name) or [])
               for name in names]
    length = max((len(c) for c in columns), default=0)
    rows = [tuple((c[i] if i < len(c) else "") or "" for c in columns) for i in range(length)]
    return [row for row in rows if any(cell.strip() for cell in row)]


def _blocks(form: Mapping, unit: str, errors: dict[str, str]) -> list[dict]:
    rows = _rows(form, "block_up_to", "block_rate")
    if not rows:
        _refuse(errors, "blocks", "Add at least one block (the last one open-ended).")
        return []
    blocks, floor = [], Decimal(0)
    for index, (up_to, rate) in enumerate(rows, start=1):
        value = _number(rate, f"Block {index} rate", errors, "blocks")
        last = index == len(rows)
        if not up_to.strip():
            if not last:
                _refuse(errors, "blocks", f"Only the last block may be open-ended; block {index} needs an upper limit.")
            blocks.append({"up_to": None, "rate": str(value) if value is not None else None})
            continue
        ceiling = _number(up_to, f"Block {index} upper limit", errors, "blocks")
        if ceiling is not None and ceiling <= floor:
            _refuse(errors, "blocks", f"Blocks must go up: block {index} ends at {ceiling} {unit}, "
                          f"not above the previous block's {floor} {unit}.")
        if last:
            _refuse(errors, "blocks", f"The last block must be open-ended: leave its upper limit ({up_to.strip()}) empty.")
        floor = ceiling if ceiling is not None and ceiling > floor else floor
        blocks.append({"up_to": str(ceiling) if ceiling is not None else None,
                       "rate": str(value) if value is not None else None})
    return blocks


def _windows(form: Mapping, errors: dict[str, str]) -> tuple[list[dict], Decimal | None]:
    """Time-of-use windows that tile the local day exactly; also their time-weighted average rate."""
    rows = _rows(form, "window_start", "window_end", "window_rate")
    if not rows:
        _refuse(errors, "windows", "Add time-of-use windows that together cover the whole day.")
        return [], None
    windows, spans, weighted = [], [], Decimal(0)
    for index, (start, end, rate) in enumerate(rows, start=1):
        first, last = _minutes(start, f"Window {index} start", errors), _minutes(end, f"Window {index} end", errors)
        value = _number(rate, f"Window {index} rate", errors, "windows")
        if first is None or last is None:
            continue
        if first == last:
            _refuse(errors, "windows", f"Window {index} starts and ends at {start.strip()}: it must last some time.")
            continue
        length = (last - first) % 1440
        # A window crossing midnight is two spans of the day.
        spans += [(first, first + length, index)] if first + length <= 1440 else \
            [(first, 1440, index), (0, first + length - 1440, index)]
        if value is not None:
            weighted += value * length
        windows.append({"start": f"{first // 60:02d}:{first % 60:02d}", "end": f"{last // 60:02d}:{last % 60:02d}",
                        "rate": str(value) if value is not None else None})
    spans.sort()
    position = 0
    for begin, finish, index in spans:
        if begin < position:
            _refuse(errors, "windows", f"Window {index} overlaps another window at {begin // 60:02d}:{begin % 60:02d}.")
        elif begin > position:
            _refuse(errors, "windows", f"No window covers {position // 60:02d}:{position % 60:02d} to "
                          f"{begin // 60:02d}:{begin % 60:02d}; windows must cover the whole day.")
        position = max(position, finish)
    if spans and position < 1440:
        _refuse(errors, "windows", f"No window covers {position // 60:02d}:{position % 60:02d} to 24:00; "
                      "windows must cover the whole day.")
    average = (weighted / 1440).quantize(Decimal("0.0001")) if weighted else None
    return windows, average


def parse_version(session: Session, form: Mapping, now: datetime | None = None) -> dict:
    """Read and check the staff form; return the version's fields or raise TariffFormError."""
    errors: dict[str, str] = {}
    estate = None
    try:
        estate = session.get(Estate, int(form.get("estate_id") or 0))
    except ValueError:
        pass
    if estate is None:
        _refuse(errors, "estate_id", "Choose an estate.")
    utility = form.get("utility") or ""
    if utility not in UTILITIES:
        _refuse(errors, "utility", "Choose a utility.")
    kind = form.get("kind") or ""
    if kind not in TARIFF_KINDS:
        _refuse(errors, "kind", "Choose a tariff kind: flat, inclining blocks or time of use.")
    effective_from = None
    try:
        effective_from = date.fromisoformat((form.get("effective_from") or "").strip())
    except ValueError:
        _refuse(errors, "effective_from", "Effective from must be a date (YYYY-MM-DD).")
    standing = _number(form.get("standing_charge"), "Standing charge", errors, "standing_charge", required=False, positive=False)
    solar = _number(form.get("solar_rate"), "Solar feed-in rate", errors, "solar_rate", required=False, positive=False)
    unit = UTILITY_UNITS.get(utility, "KWH").replace("KWH", "kWh")
    rates: dict = {}
    if kind == "flat":
        rate = _number(form.get("rate"), "Rate", errors, "rate")
        rates = {"rate": str(rate) if rate is not None else None}
    elif kind == "block":
        rates = {"blocks": _blocks(form, unit, errors)}
        if estate is not None and estate.wallet_denomination == "units":
            _refuse(errors, "kind", f"{estate.name} sells prepaid units at one price per unit; inclining blocks "
                          "have none. Use a flat or time-of-use tariff.")
    elif kind == "tou":
        windows, average = _windows(form, errors)
        rates = {"windows": windows, "default_rate": str(average) if average is not None else None}
    tariff_class = None
    if estate is not None:
        from app.billing.tariff_classes import TariffClassError, _class_of_estate, default_class

        chosen = str(form.get("tariff_class_id") or "").strip()
        if not chosen:
            tariff_class = default_class(session, estate)  # one class, as before classes
        else:
            try:
                tariff_class = _class_of_estate(session, estate, chosen)
            except TariffClassError as error:
                errors.update({"tariff_class_id": error.errors["class_id"]})
    if estate is not None and effective_from is not None:
        earliest = earliest_effective_date(session, estate, now)
        if effective_from < earliest:
            _refuse(errors, "effective_from", f"Residents must hear of a new tariff {notice_days(session, estate.id)} days ahead: "
                          f"the earliest effective date is {earliest.isoformat()}.")
        period = f"{effective_from:%Y-%m}"
        locked = session.scalar(select(FinancialPeriod.id).where(
            FinancialPeriod.estate_id == estate.id, FinancialPeriod.period == period,
            FinancialPeriod.status == "locked"))
        if locked:
            _refuse(errors, "effective_from", f"{estate.name}'s period {period} is locked: no tariff can start inside it.")
        # The default class's versions include the NULL-class ones (older rows, factories).
        same_class = None if tariff_class is None else (
            (TariffVersion.tariff_class_id.is_(None) | (TariffVersion.tariff_class_id == tariff_class.id))
            if tariff_class.is_default else TariffVersion.tariff_class_id == tariff_class.id)
        if utility in UTILITIES and same_class is not None and session.scalar(select(TariffVersion.id).where(
                TariffVersion.estate_id == estate.id, TariffVersion.utility == utility,
                TariffVersion.effective_from == effective_from, same_class)):
            _refuse(errors, "effective_from", f"A {label('utility', utility).lower()} tariff for the class "
                          f"{tariff_class.name} already starts on {effective_from.isoformat()}.")
    if errors:
        raise TariffFormError(errors)
    return {"estate_id": estate.id, "utility": utility, "kind": kind, "effective_from": effective_from,
            "rates": rates, "standing_charge": standing or Decimal(0), "solar_rate": solar,
            "tariff_class_id": tariff_class.id}


def create_version(session: Session, form: Mapping, *, user_id: int | None = None,
                   now: datetime | None = None) -> TariffVersion:
    """Save a new future-dated tariff version from the staff form; audit and commit."""
    fields = parse_version(session, form, now)
    version = TariffVersion(**fields, created_by_user_id=user_id)
    session.add(version)
    session.flush()
    audit.record(session, "tariff.create", version, new={
        "tariff_class": version.tariff_class.code if version.tariff_class else None,
        "utility": version.utility, "kind": version.kind, "effective_from": version.effective_from.isoformat(),
        "rates": version.rates, "standing_charge": str(version.standing_charge),
        "solar_rate": str(version.solar_rate) if version.solar_rate is not None else None})
    session.commit()
    return version


# --- reading versions ----------------------------------------------------------------------


def class_key_of(session: Session, version: TariffVersion) -> int | None:
    """The version's class key: None for the estate's default class, else its class id."""
    if version.tariff_class_id is None:
        return None
    found = session.get(TariffClass, version.tariff_class_id)
    return None if found is None or found.is_default else found.id


def previous_version(session: Session, version: TariffVersion) -> TariffVersion | None:
    """The version this one replaces: the latest earlier one its class pays for the utility."""
    earlier = [v for v in class_versions(session, version.estate_id, version.utility, class_key_of(session, version))
               if v.effective_from < version.effective_from]
    return earlier[-1] if earlier else None


def version_status(version: TariffVersion, in_force_id: int | None, today: date) -> str:
    """scheduled (future), in force (the current one) or superseded."""
    if version.effective_from > today:
        return "scheduled"
    return "in force" if version.id == in_force_id else "superseded"


@dataclass
class EstateTariffs:
    estate: Estate
    today: date
    rows: list[tuple[TariffVersion, str]]  # newest first, with status
    class_names: dict[int, str] = field(default_factory=dict)  # by version id, when classes differ


def tariff_overview(session: Session, now: datetime | None = None) -> list[EstateTariffs]:
    """Every estate's versions per utility with their status, newest first."""
    now = now or utcnow()
    estates = session.scalars(select(Estate).order_by(Estate.name)).all()
    versions = session.scalars(select(TariffVersion).order_by(
        TariffVersion.utility, TariffVersion.tariff_class_id, TariffVersion.effective_from.desc())).all()
    by_estate: dict[int, list[TariffVersion]] = defaultdict(list)
    for version in versions:
        by_estate[version.estate_id].append(version)
    overview = []
    defaults = {c.estate_id: c.id for c in session.scalars(select(TariffClass).where(TariffClass.is_default.is_(True)))}
    classes = session.scalars(select(TariffClass)).all()
    names = {c.id: c.name for c in classes}
    counts = Counter(c.estate_id for c in classes)
    for estate in estates:
        today = now.astimezone(estate.tz).date()
        in_force: dict[tuple[str, int | None], TariffVersion] = {}  # the latest started, per class

        def key(version: TariffVersion) -> tuple[str, int | None]:
            return version.utility, (None if version.tariff_class_id in (None, defaults.get(estate.id))
                                     else version.tariff_class_id)

        for version in by_estate[estate.id]:
            latest = in_force.get(key(version))
            if version.effective_from <= today and (latest is None or version.effective_from > latest.effective_from):
                in_force[key(version)] = version
        several = counts[estate.id] > 1  # name the class only when there is a choice
        overview.append(EstateTariffs(estate, today, [
            (v, version_status(v, in_force[key(v)].id if key(v) in in_force else None, today)) for v in by_estate[estate.id]],
            {v.id: names.get(v.tariff_class_id if v.tariff_class_id is not None else defaults.get(estate.id), "Standard")
             for v in by_estate[estate.id]} if several else {}))
    return overview


def rate_text(rate, currency: str) -> str:
    """A rate with as many decimals as it was set with: 'R 2.855' ('2,855 ZAR' in French)."""
    from app.i18n.formatting import rate_text as written

    return written(rate, currency)


def describe(version: TariffVersion, currency: str) -> str:
    """The version's prices in one line a resident can read, in the reader's language."""
    from flask_babel import gettext

    from app.i18n import current_language
    from app.i18n.formatting import money_text

    unit = {"electricity": "kWh", "solar": "kWh"}.get(version.utility, "kL")
    rates = version.rates or {}
    if version.kind == "flat":
        text = f"{rate_text(rates['rate'], currency)}/{unit}"
    elif version.kind == "block":
        parts, floor = [], "0"
        for block in rates.get("blocks", []):
            price = rate_text(block["rate"], currency)
            parts.append(f"{floor}–{block['up_to']} {unit} {price}" if block.get("up_to")
                         else gettext("above %(floor)s %(unit)s %(price)s", floor=floor, unit=unit, price=price))
            floor = block.get("up_to") or floor
        text = gettext("per month %(blocks)s", blocks=", ".join(parts))
    else:
        text = ", ".join(f"{w['start']}–{w['end']} {rate_text(w['rate'], currency)}/{unit}"
                         for w in rates.get("windows", []))
    if version.standing_charge:
        charge = (format_amount(version.standing_charge, currency) if current_language() == "en"
                  else money_text(Decimal(version.standing_charge), currency))
        text += gettext("; standing charge %(amount)s a month", amount=charge)
    if version.solar_rate:
        text += gettext("; solar exports credited at %(rate)s/%(unit)s", rate=rate_text(version.solar_rate, currency),
                        unit=unit)
    return text


# --- impact report -------------------------------------------------------------------------


@dataclass
class UnitImpact:
    unit_id: int
    unit_number: str
    consumption: Decimal
    old_cost: Decimal | None
    new_cost: Decimal

    @property
    def change(self) -> Decimal | None:
        return None if self.old_cost is None else self.new_cost - self.old_cost

    @property
    def percent(self) -> Decimal | None:
        if self.old_cost is None or self.old_cost == 0:
            return None
        return (self.change / self.old_cost * 100).quantize(Decimal("0.1"))


@dataclass
class ImpactReport:
    version: TariffVersion
    previous: TariffVersion | None
    estate: Estate
    month_start: datetime  # local
    rows: list[UnitImpact] = field(default_factory=list)
    tariff_class: str = ""  # the name of the version's class: only its units are priced

    @property
    def old_total(self) -> Decimal | None:
        return None if self.previous is None else sum((r.old_cost for r in self.rows), Decimal(0))

    @property
    def new_total(self) -> Decimal:
        return sum((r.new_cost for r in self.rows), Decimal(0))

    @property
    def consumption_total(self) -> Decimal:
        return sum((r.consumption for r in self.rows), Decimal(0))


def _month_cost(price: Price, tz, day: date, profile: dict[int, Decimal]) -> Decimal:
    """A month's cost of consumption by local hour of day (hour 0 holds it all for flat/blocks)."""
    timeless = replace(price, effective_from=date.min)
    used: dict[date, Decimal] = {}
    total = price.standing_charge
    for hour, quantity in sorted(profile.items()):
        if quantity > 0:
            start = datetime.combine(day, time(hour), tz)
            total += charge([timeless], tz, start, start + timedelta(hours=1), quantity, used)
        elif quantity < 0 and price.solar_rate:
            total += quantity * price.solar_rate  # net export, credited at the solar rate
    return total


def impact_report(session: Session, version: TariffVersion, now: datetime | None = None) -> ImpactReport:
    """Each unit's last local month priced under the replaced version and under `version`."""
    from app.metering.queries import period_bounds

    estate = session.get(Estate, version.estate_id)
    tz = estate.tz
    start, end = period_bounds("last_month", now or utcnow(), tz)
    previous = previous_version(session, version)
    from app.billing.tariff_classes import class_name_of_version, units_paying

    report = ImpactReport(version, previous, estate, start.astimezone(tz),
                          tariff_class=class_name_of_version(session, version))
    paying = units_paying(session, version)  # the units of the version's class
    meters = [m for m in session.execute(select(Meter.id, Meter.unit_id, Unit.number).join(Unit, Unit.id == Meter.unit_id)
                                         .where(Meter.estate_id == estate.id, Meter.utility == version.utility,
                                                Meter.role == "unit")).all() if m.unit_id in paying]
    if not meters:
        return report
    by_hour = version.kind == "tou" or (previous is not None and previous.kind == "tou")
    query = select(ConsumptionRollup.meter_id, ConsumptionRollup.period_start, ConsumptionRollup.consumption).where(
        ConsumptionRollup.meter_id.in_([m.id for m in meters]))
    if by_hour:  # time of use needs the hour of day; everything else the month's total
        query = query.where(ConsumptionRollup.grain == "hour", ConsumptionRollup.period_start >= start,
                            ConsumptionRollup.period_start < end)
    else:
        query = query.where(ConsumptionRollup.grain == "month", ConsumptionRollup.period_start == start)
    unit_of = {m.id: (m.unit_id, m.number) for m in meters}
    profiles: dict[int, dict[int, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for meter_id, period_start, consumption in session.execute(query):
        hour = period_start.astimezone(tz).hour if by_hour else 0
        profiles[unit_of[meter_id][0]][hour] += Decimal(consumption)
    day = report.month_start.date()
    new_price = Price.of(version)
    old_price = Price.of(previous) if previous is not None else None
    for unit_id, number in sorted({v for v in unit_of.values()}, key=lambda u: u[1]):
        profile = profiles.get(unit_id, {})
        report.rows.append(UnitImpact(
            unit_id, number, sum(profile.values(), Decimal(0)),
            quantize(_month_cost(old_price, tz, day, profile), estate.currency) if old_price else None,
            quantize(_month_cost(new_price, tz, day, profile), estate.currency)))
    return report


# --- notices and activation ----------------------------------------------------------------


def _recipients(session: Session, estate_id: int, today: date) -> list[tuple[Unit, Person, User | None]]:
    """Current tenants and owners of the estate's units, each once per unit."""
    tenants = select(Tenancy.unit_id, Tenancy.person_id).where(
        Tenancy.move_in <= today, or_(Tenancy.move_out.is_(None), Tenancy.move_out > today))
    owners = select(UnitOwnership.unit_id, UnitOwnership.person_id).where(
        UnitOwnership.since <= today, or_(UnitOwnership.until.is_(None), UnitOwnership.until > today))
    pairs = set(session.execute(tenants).all()) | set(session.execute(owners).all())
    units = {u.id: u for u in session.scalars(select(Unit).where(Unit.estate_id == estate_id))}
    pairs = {(unit_id, person_id) for unit_id, person_id in pairs if unit_id in units}
    persons = {p.id: p for p in session.scalars(select(Person).where(Person.id.in_({p for _, p in pairs})))}
    users = {u.person_id: u for u in session.scalars(select(User).where(
        User.person_id.in_(set(persons)), User.active.is_(True)))}
    return [(units[unit_id], persons[person_id], users.get(person_id))
            for unit_id, person_id in sorted(pairs)]


def send_notice(session: Session, version: TariffVersion, now: datetime) -> int:
    """Tell the tenants and owners of the units the version's class covers, with their unit's estimate."""
    from app.notify import notify

    estate = session.get(Estate, version.estate_id)
    report = {row.unit_id: row for row in impact_report(session, version, now).rows}
    from app.billing.tariff_classes import units_paying

    paying = units_paying(session, version)  # a class's tariff is news only to its units
    sent = 0
    for unit, person, user in _recipients(session, estate.id, now.astimezone(estate.tz).date()):
        if unit.id not in paying:
            continue
        impact = report.get(unit.id)
        context = {"estate": estate, "unit": unit, "version": version,
                   "utility": label("utility", version.utility).lower(),
                   # Written when the message is rendered: in each recipient's language (X8).
                   "prices": LazyString(describe, version, estate.currency),
                   "old_cost": format_amount(impact.old_cost, estate.currency)
                   if impact and impact.old_cost is not None else None,
                   "new_cost": format_amount(impact.new_cost, estate.currency) if impact else None}
        notify(session, "tariff_notice", context, user=user, person=person,
               channels=("in_app", "email") if user else ("email",))
        sent += 1
    return sent


def run_schedule(session: Session, now: datetime | None = None) -> tuple[int, int]:
    """Send due notices and activate versions whose date has come; commit; (notices, activations)."""
    now = now or utcnow()
    pending = session.scalars(select(TariffVersion).where(
        or_(TariffVersion.notice_sent_at.is_(None), TariffVersion.activated_at.is_(None)))
        .order_by(TariffVersion.id).with_for_update(skip_locked=True)).all()  # two runs never double-send
    notices = activations = 0
    estates: dict[int, Estate] = {}
    for version in pending:
        estate = estates.get(version.estate_id) or session.get(Estate, version.estate_id)
        estates[estate.id] = estate
        today = now.astimezone(estate.tz).date()
        if (version.notice_sent_at is None and version.effective_from >= today
                and today >= version.effective_from - timedelta(days=notice_days(session, estate.id))):
            count = send_notice(session, version, now)
            version.notice_sent_at = now
            audit.record(session, "tariff.notice", version, new={
                "recipients": count, "effective_from": version.effective_from.isoformat()})
            notices += 1
        if version.activated_at is None and version.effective_from <= today:
            version.activated_at = now
            previous = previous_version(session, version)
            audit.record(session, "tariff.activate", version,
                         old={"version": previous.id if previous else None},
                         new={"version": version.id, "utility": version.utility,
                              "effective_from": version.effective_from.isoformat()})
            activations += 1
    session.commit()
    return notices, activations


@job("tariff_schedule")
def tariff_schedule(session: Session, progress) -> str:
    """Send due tariff notices and switch on versions whose effective date has come."""
    notices, activations = run_schedule(session)
    return f"{notices} tariff notice{'s' if notices != 1 else ''} sent, {activations} version{'s' if activations != 1 else ''} activated"

