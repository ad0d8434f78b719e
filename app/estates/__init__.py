"""Estates: the administration of estates, units and their status (occupancy, financial periods).

- `status.py`: the writes: a unit's occupancy (with history) and closing or locking a period.
- `queries.py`: the reads: recent periods with their status.
- `profile.py`: creating and editing an estate (profile, feature flags, its own settings).
- `settings_catalog.py`: every named setting with its label, help, type, default and rule.
- `choices.py`: the countries, currencies (CLDR, via Babel) and timezones an estate may have.
- `queries.py`: the reads: recent periods with their status; the administration's unit list.
- `units.py`: create and edit units (number, floor area, address, GPS, account number) and
  change their occupancy, each audited and committed once.
- `account_numbers.py`: account numbers from the estate's pattern (`account_number_pattern`),
  unique across estates, that SMS and EFT payments quote; `assign_account_numbers()` for imports.
- `notes.py`: case notes on units and people (append-only), read by staff and the estate's agents.

The estate administration (estates, units, meters and their replacement, people, grants,
the CSV import mechanism, tenancies) joins this package. Settings live in `app/settings.py`.
"""
