"""The settings catalogue: every named setting the code reads, with its label, help, type, default and rule.

One entry per setting (`SettingSpec`). The estate form renders, parses and validates estate
settings from it; code that reads a setting takes its default from here
(`setting_default(key)`), so a default lives in one place. Adding a setting is one entry in
`CATALOG`.

`scope="estate"`: set per estate on the estate settings page (an estate's own value wins over
a global one, `app.settings.get_setting`). `scope="global"`: one value for every estate, set
where it belongs (maintenance mode on the staff pages and `flask maintenance`, ChirpStack
profiles by `put_setting`); listed so their defaults live here too.

Not settings, so not listed: the sync cursors the imports keep in the same table
(`koios.payments.since`, `koios.synced.<site>`).

On the form an empty field means "not set for this estate": the estate's own row is removed
and the global value, else the default, applies (`SettingSpec.parse` returns None).

Values are stored as the code reads them: whole numbers as int, amounts and percentages as
decimal strings ("50.00"), lists as lists of strings, text as text, booleans as bool.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from flask_babel import gettext
from app.money import MoneyError, UTILITY_UNITS, parse_amount

SETTING_TYPES = ("int", "decimal", "percent", "text", "choice", "colour", "bool", "list", "json")
COLOUR = re.compile(r"#[0-9a-fA-F]{6}")
MAX_TEXT = 200


class SettingValueError(ValueError):
    """A value a setting's rule refuses; the message says what is expected."""


@dataclass(frozen=True)
class SettingSpec:
    """One setting: how it is shown, read from a form, checked, and what it is when unset."""

    key: str
    label: str
    help: str
    type: str
    default: Any
    group: str
    scope: str = "estate"  # "estate" (on the estate settings page) or "global"
    minimum: Decimal | int | None = None
    maximum: Decimal | int | None = None
    pattern: str | None = None  # the whole value (each item, for a list) must match
    pattern_hint: str = ""  # what a value that does not match should look like
    choices: tuple[tuple[str, str], ...] = ()
    config_key: str | None = None  # app config value that stands in for the default when set
    amount_of: str | None = None  # "currency" or "water" (the water pocket's commodity)
    upper: bool = False  # text and list items are kept in upper case
    check: Callable[[Any], str | None] | None = None  # one more rule; returns the problem
    placeholder: str = ""

    def __post_init__(self) -> None:
        if self.type not in SETTING_TYPES:
            raise ValueError(f"{self.key}: unknown setting type {self.type!r}")
        if self.scope not in ("estate", "global"):
            raise ValueError(f"{self.key}: scope is estate or global")

    def fallback(self) -> Any:
        """The value when neither the estate nor a global setting has one (config first, if named)."""
        if self.config_key:
            try:
                from flask import current_app
                configured = current_app.config.get(self.config_key)
            except RuntimeError:  # no application context
                configured = None
            if configured not in (None, ""):
                return configured
        return setting_default(self.key)

    @property
    def editable(self) -> bool:
        """Whether the estate settings page edits it."""
        return self.scope == "estate" and self.type != "json"

    def commodity(self, currency: str, denomination: str = "currency") -> str | None:
        """The currency or unit an amount setting is in, for this estate."""
        if self.amount_of == "currency":
            return currency
        if self.amount_of == "water":
            return UTILITY_UNITS["water"] if denomination == "units" else currency
        return None

    def parse(self, text: Any, *, currency: str = "USD", denomination: str = "currency") -> Any:
        """Read what a person typed into the value stored, None for empty (not set here).

        SettingValueError says what is wrong.
        """
        if self.type == "bool":
            return str(text or "").strip().lower() in ("1", "on", "true", "yes")
        typed = "" if text is None else str(text).strip()
        if not typed:
            return None  # not set for this estate: the global value, else the default, applies
        if len(typed) > MAX_TEXT:
            raise SettingValueError(f"at most {MAX_TEXT} characters")
        value = getattr(self, f"_parse_{self.type}")(typed, currency, denomination)
        if self.check is not None and (problem := self.check(value)):
            raise SettingValueError(problem)
        return value

    def show(self, value: Any) -> str:
        """The value as the form shows it (and as the read-only page prints it)."""
        if value is None:
            return ""
        if self.type == "list":
            items = value.split(",") if isinstance(value, str) else value
            return ", ".join(str(item).strip() for item in items if str(item).strip())
        if self.type == "choice":
            return dict(self.choices).get(str(value), str(value))
        if self.type == "bool":
            return "Yes" if value else "No"
        return str(value)

    # --- one reader per type ----------------------------------------------------------------

    def _in_range(self, value: Decimal | int, shown: str) -> None:
        if self.minimum is not None and value < self.minimum:
            raise SettingValueError(f"{shown} is below the minimum, {self.minimum}")
        if self.maximum is not None and value > self.maximum:
            raise SettingValueError(f"{shown} is above the maximum, {self.maximum}")

    def _parse_int(self, typed: str, currency: str, denomination: str) -> int:
        if not re.fullmatch(r"-?[0-9]{1,9}", typed, re.ASCII):
            raise SettingValueError(f"{typed!r} is not a whole number: use digits, like {self.default}")
        value = int(typed)
        self._in_range(value, str(value))
        return value

    def _parse_decimal(self, typed: str, currency: str, denomination: str) -> str:
        commodity = self.commodity(currency, denomination) or "USD"
        negative = self.minimum is not None and self.minimum < 0
        try:
            value = parse_amount(typed, commodity, allow_negative=negative)
        except MoneyError as error:
            raise SettingValueError(str(error)) from None
        self._in_range(value, str(value))
        return str(value)

    def _parse_percent(self, typed: str, currency: str, denomination: str) -> str:
        found = re.fullmatch(r"[0-9]{1,3}(?:[.,][0-9])?", typed.removesuffix("%").strip(), re.ASCII)
        if found is None:
            raise SettingValueError(f"{typed!r} is not a percentage: use a number like 15 or 12.5")
        value = Decimal(found[0].replace(",", "."))
        self._in_range(value, f"{value} %")
        return str(value)

    def _parse_text(self, typed: str, currency: str, denomination: str) -> str:
        value = typed.upper() if self.upper else typed
        if self.pattern and not re.fullmatch(self.pattern, value):
            raise SettingValueError(f"{typed!r}: {self.pattern_hint or 'not an accepted value'}")
        return value

    def _parse_choice(self, typed: str, currency: str, denomination: str) -> str:
        if typed not in dict(self.choices):
            raise SettingValueError(gettext("choose one of the listed values"))
        return typed

    def _parse_colour(self, typed: str, currency: str, denomination: str) -> str:
        if not COLOUR.fullmatch(typed):
            raise SettingValueError(f"{typed!r} is not a colour: write it as # and six hex digits, like {self.default}")
        return typed.lower()

    def _parse_list(self, typed: str, currency: str, denomination: str) -> list[str]:
        items = [item.strip() for item in typed.split(",") if item.strip()]
        value = [item.upper() for item in items] if self.upper else items
        for item in value:
            if self.pattern and not re.fullmatch(self.pattern, item):
                raise SettingValueError(f"{item!r}: {self.pattern_hint or 'not an accepted value'}")
        return list(dict.fromkeys(value))  # each once, in the order typed

    def _parse_json(self, typed: str, currency: str, denomination: str) -> Any:
        raise SettingValueError(gettext("this setting is not set from a form"))


# --- extra rules ---------------------------------------------------------------------------

def _customer_code_problem(pattern: str) -> str | None:
    """A SparkMeter customer-code pattern must name the unit or the meter, and nothing else."""
    names = set(re.findall(r"\{([^{}]*)\}", pattern))
    if not names & {"unit", "serial"}:
        return "include {unit} (the unit number) or {serial} (the SparkMeter meter's serial)"
    if names - {"unit", "serial"}:
        return "only {unit} and {serial} can be filled in"
    try:
        pattern.format(unit="1", serial="SM1")
    except (KeyError, IndexError, ValueError):
        return "braces must be {unit} or {serial}; write a literal brace twice"
    return None


def _account_pattern_problem(pattern: str) -> str | None:
    from app.estates.account_numbers import BadPattern, check_pattern  # account_numbers reads settings

    try:
        check_pattern(pattern)
    except BadPattern as error:
        return next(iter(error.errors.values()))
    return None


def _senders_problem(senders: list[str]) -> str | None:
    """An estate may only narrow the trusted sender ids (MPESA_SENDERS), never add to them."""
    try:
        from flask import current_app
        trusted = current_app.config.get("MPESA_SENDERS", "MPESA,M-PESA")
    except RuntimeError:  # no application: the shipped default
        trusted = "MPESA,M-PESA"
    allowed = {item.strip().upper() for item in str(trusted).split(",") if item.strip()}
    outside = [sender for sender in senders if sender not in allowed]
    if outside:
        return (f"{', '.join(outside)} {'is' if len(outside) == 1 else 'are'} not a trusted sender "
                f"(trusted: {', '.join(sorted(allowed))}); an estate can only narrow that list")
    return None


PAYMENTS, SUPPLY, BILLING, BRANDING, VENDORS, REPORTS, SYSTEM = (
    "Payments", "Supply and tariffs", "Supply and tariffs", "Statements and reports",
    "Vendors and devices", "Statements and reports", "System")

CATALOG: tuple[SettingSpec, ...] = (
    SettingSpec(
        "payment_max_amount", "Largest single payment",
        "Payments above this (top-up, SMS, EFT row, assignment) are refused, in the estate's "
        "currency.",
        "decimal", "50000", PAYMENTS, minimum=Decimal("1"), maximum=Decimal("100000000"),
        amount_of="currency", config_key="PAYMENT_MAX_AMOUNT"),
    SettingSpec(
        "mpesa_paybill", "M-PESA paybill number",
        "Told to tenants with a cut or restore notice, with the unit's account number. Empty: "
        "no M-PESA instructions.",
        "text", None, PAYMENTS, pattern=r"[0-9]{5,7}", pattern_hint="a paybill number is 5 to 7 digits",
        placeholder="e.g. 400200"),
    SettingSpec(
        "mpesa_senders", "Trusted M-PESA senders",
        "SMS sender ids whose confirmations may credit this estate's units, comma-separated. "
        "Empty: every sender trusted system-wide (MPESA_SENDERS); this can only narrow that list.",
        "list", None, PAYMENTS, pattern=r"[A-Z0-9-]{1,11}",
        pattern_hint="a sender id is 1 to 11 letters, digits or hyphens", upper=True,
        check=_senders_problem, placeholder="e.g. MPESA"),
    SettingSpec(
        "account_number_pattern", "Account number pattern",
        "How new units' account numbers are made; payers quote them in M-PESA and EFT references. "
        "{seq} is the unit's place in the estate's sequence ({seq:04d} pads it to 4 digits), {code} "
        "the estate code; anything else may be letters, digits, - and /. A change applies to units "
        "numbered afterwards, and the sequence continues.",
        "text", "{seq:04d}{code}", PAYMENTS, check=_account_pattern_problem, placeholder="{seq:04d}{code}"),
    SettingSpec(
        "reversal_approval_threshold", "Reversal approval threshold",
        "Reversals and reassignments moving more than this amount (estate currency) wait for a "
        "second staff member's approval; 0 makes every one wait.",
        "decimal", "1000", PAYMENTS, minimum=Decimal("0"), maximum=Decimal("100000000"),
        amount_of="currency"),
    SettingSpec(
        "water_credit_limit", "Water credit limit",
        "Water is never cut off: when the water pocket is this far below zero, the meter is "
        "flagged for arrears. In the estate's currency, or kL when wallets hold units.",
        "decimal", "0", SUPPLY, minimum=Decimal("0"), maximum=Decimal("10000000"), amount_of="water"),
    # --- arrears and debt (A4, issue 16) ---
    SettingSpec(
        "credit_limit", "Credit limit",
        "How far below zero an electricity, hot water or solar pocket may go before credit control "
        "cuts it, in the estate's currency (0: cut at zero). A pocket's own limit, set on the unit's "
        "credit limits page, wins.",
        "decimal", "0", "Arrears and debt", minimum=Decimal("0"), maximum=Decimal("10000000"),
        amount_of="currency"),
    SettingSpec(
        "arrears_recovery_mode", "Arrears recovery on top-up",
        "What part of each top-up pays the unit's arrears (oldest first) before the rest reaches the pocket.",
        "choice", "off", "Arrears and debt",
        choices=(("off", "Nothing"), ("percent", "A percentage of each top-up"),
                 ("fixed", "A fixed amount of each top-up"))),
    SettingSpec(
        "arrears_recovery_percent", "Recovery share (%)",
        "With percentage recovery: the share of each top-up that pays arrears.",
        "percent", "25", "Arrears and debt", minimum=Decimal("0"), maximum=Decimal("100")),
    SettingSpec(
        "arrears_recovery_fixed", "Recovery amount",
        "With fixed recovery: the amount of each top-up that pays arrears (never more than the top-up).",
        "decimal", "0", "Arrears and debt", minimum=Decimal("0"), maximum=Decimal("10000000"),
        amount_of="currency"),
    SettingSpec(
        "arrears_restricted_percent", "Restricted recovery share (%)",
        "Once the ladder restricts a debtor, this share of each top-up pays arrears (instead of the "
        "usual recovery).",
        "percent", "50", "Arrears and debt", minimum=Decimal("0"), maximum=Decimal("100")),
    SettingSpec(
        "arrears_ladder", "Escalation ladder",
        "Steps the daily arrears job takes, as days:action, comma-separated; actions are warn, "
        "restrict, suspend and escalate. Each step is applied once per spell in debt.",
        "list", ["0:warn", "30:restrict", "60:suspend", "90:escalate"], "Arrears and debt",
        pattern=r"[0-9]{1,4}:(warn|restrict|suspend|escalate)",
        pattern_hint="write a step as days:action, like 30:restrict"),
    SettingSpec(
        "write_off_approval_threshold", "Write-off approval threshold",
        "Write-offs of more than this amount (estate currency) wait for a second staff member's "
        "approval; 0 makes every one wait.",
        "decimal", "1000", "Arrears and debt", minimum=Decimal("0"), maximum=Decimal("100000000"),
        amount_of="currency"),
    # --- end arrears and debt ---
    # --- debt cohorts (A5, issue 16) ---
    SettingSpec(
        "cohort_day", "Debt cohort day",
        "How many days after the fiscal year starts the year's debt cohort is taken (0: on the first day).",
        "int", 30, "Arrears and debt", minimum=0, maximum=364),
    SettingSpec(
        "cohort_size", "Debt cohort size",
        "How many of the estate's largest debtors the year's cohort follows.",
        "int", 200, "Arrears and debt", minimum=1, maximum=5000),
    SettingSpec(
        "cohort_rank", "Debt cohort ranked by",
        "Which debtors make the cohort: those owing most, or those who used most in the year before.",
        "choice", "owed", "Arrears and debt", choices=(("owed", "Amount owed"), ("usage", "Usage"))),
    SettingSpec(
        "cohort_source", "External cohort source",
        "A SQLAlchemy URL and a query of an external billing database the cohort is read from "
        "(set with `flask cohorts source`; not on this form, the URL may hold a password).",
        "json", None, "Arrears and debt"),
    # --- end debt cohorts ---
    SettingSpec(
        "tariff_notice_days", "Tariff notice (days)",
        "Residents hear of a new tariff this many days before it starts; it is also the "
        "earliest start date staff can give a new version.",
        "int", 30, BILLING, minimum=0, maximum=365),
    SettingSpec(
        "brand_colour", "Brand colour",
        "The colour of the estate's statements and AGM audit reports.",
        "colour", "#0f766e", BRANDING),
    SettingSpec(
        "loss_threshold_percent", "Loss threshold (%)",
        "The utility page marks a bulk meter's loss in red when more than this share of what "
        "it measured is not accounted for by unit meters.",
        "percent", "15", REPORTS, minimum=Decimal("0"), maximum=Decimal("100")),
    SettingSpec(
        "sparkmeter_customer_code", "SparkMeter customer code",
        "How a unit's SparkMeter customer code is formed, for the credit push and payments "
        "import: {unit} is the unit number, {serial} the meter's serial (e.g. C-{serial}).",
        "text", "{unit}", VENDORS, check=_customer_code_problem, placeholder="{unit}"),
    SettingSpec(
        "thundercloud_sites", "ThunderCloud sites",
        "The ThunderCloud site ids whose exports are this estate's, comma-separated; a ThunderCloud "
        "backfill of the estate fetches only these. Empty: no ThunderCloud backfill for the estate.",
        "list", None, VENDORS, pattern=r"[A-Za-z0-9_.:-]{1,64}",
        pattern_hint="letters, digits, '-', '_', '.' or ':' (no spaces or slashes), at most 64",
        placeholder="e.g. S1, S2"),
    SettingSpec(
        "chirpstack_application_id", "ChirpStack application",
        "The ChirpStack application the estate's LoRaWAN meters belong to; relay commands are "
        "published to application/<this>/device/<DevEUI>/command/down.",
        "text", "meterwise", VENDORS, pattern=r"[A-Za-z0-9_.:-]{1,64}",
        pattern_hint="letters, digits, '-', '_', '.' or ':' (no spaces or slashes), at most 64"),
    SettingSpec(
        "chirpstack_profiles", "ChirpStack decoding profiles",
        "Per device profile, the field of the decoded uplink that holds the register and its unit.",
        "json", {"default": {"field": "energy", "unit": "kWh"}}, SYSTEM, scope="global"),
    SettingSpec(
        "ingest_maintenance", "Maintenance mode",
        "While on, ingest holds readings (staff pages and `flask maintenance on|off`).",
        "bool", False, SYSTEM, scope="global"),
    SettingSpec(
        "metrics_enabled", "Prometheus metrics",
        "While on, GET /metrics answers in the Prometheus text format (the METRICS_ENABLED config "
        "value also switches it on); off, it is a 404.",
        "bool", False, SYSTEM, scope="global"),
    # Utility layer (issue 19): demand management (app/analytics/demand.py).
    SettingSpec(
        "demand_threshold_kw", "Demand threshold (kW)",
        "When the bulk electricity meter draws more than this, the utility users and the heaviest "
        "consumers are warned. Empty: demand is not managed.",
        "decimal", None, SUPPLY, minimum=Decimal("0.1"), maximum=Decimal("1000000")),
    SettingSpec(
        "demand_restore_kw", "Demand restore level (kW)",
        "Held supply returns once demand stays below this for the restore time. Empty: 90 % of the threshold.",
        "decimal", None, SUPPLY, minimum=Decimal("0"), maximum=Decimal("1000000")),
    SettingSpec(
        "demand_restore_minutes", "Demand restore time (minutes)",
        "How long demand must stay below the restore level before held supply returns.",
        "int", 15, SUPPLY, minimum=0, maximum=1440),
    SettingSpec(
        "demand_restrict", "Hold supply over the demand threshold",
        "Over the threshold, hold the heaviest consumers' electricity (never water) while credit control is on.",
        "bool", False, SUPPLY),
    SettingSpec(
        "demand_hold_minutes", "Demand hold time (minutes)",
        "How long a demand hold lasts at most; it lapses by itself after this.",
        "int", 30, SUPPLY, minimum=5, maximum=1440),
    SettingSpec(
        "demand_max_units", "Units held at most",
        "The most units whose electricity is held in one demand event.",
        "int", 5, SUPPLY, minimum=1, maximum=1000),
    SettingSpec(
        "demand_order", "Who is held first",
        "Heaviest consumers first, by their use over the last hour or the last day.",
        "choice", "last_hour", SUPPLY, choices=(("last_hour", "Heaviest over the last hour"),
                                                ("last_day", "Heaviest over the last day"))),
)

# Languages (issue 23): the estate's default language and the symbol its currency is known by.
LANGUAGE_GROUP = "Languages"
CATALOG += (
    SettingSpec(
        "language", "Default language",
        "Pages, emails, SMS and statements for people who have not chosen a language themselves.",
        "choice", "en", LANGUAGE_GROUP, choices=(("en", "English"), ("fr", "Français"), ("st", "Sesotho"))),
    SettingSpec(
        "currency_symbol", "Currency symbol",
        "The symbol people know the estate's currency by, where CLDR has none (e.g. M for the loti). "
        "Empty: the standard one.",
        "text", None, LANGUAGE_GROUP, pattern=r"[^\s\d]{1,4}", pattern_hint="1 to 4 characters, no digits or spaces",
        placeholder="e.g. M"),
)

BY_KEY: dict[str, SettingSpec] = {spec.key: spec for spec in CATALOG}
if len(BY_KEY) != len(CATALOG):  # pragma: no cover - a catalogue with a key twice is a typo
    raise RuntimeError("a setting key is listed twice in the catalogue")


def spec_for(key: str) -> SettingSpec:
    """The catalogue entry of a setting (KeyError for a key nobody declared)."""
    return BY_KEY[key]


def setting_default(key: str) -> Any:
    """A setting's value when nobody has set it (a copy, so callers cannot change the catalogue's)."""
    default = BY_KEY[key].default
    if isinstance(default, (dict, list)):
        import copy
        return copy.deepcopy(default)
    return default


def estate_specs() -> tuple[SettingSpec, ...]:
    """The settings the estate settings page edits, in catalogue order."""
    return tuple(spec for spec in CATALOG if spec.editable)


def grouped(specs: tuple[SettingSpec, ...] | None = None) -> list[tuple[str, list[SettingSpec]]]:
    """Settings by group, groups in the order they first appear."""
    groups: dict[str, list[SettingSpec]] = {}
    for spec in specs if specs is not None else estate_specs():
        groups.setdefault(spec.group, []).append(spec)
    return list(groups.items())
