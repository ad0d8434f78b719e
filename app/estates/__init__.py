"""Estates: the administration of estates, units and their status (occupancy, financial periods).

- `status.py`: the writes: a unit's occupancy (with history) and closing or locking a period.
- `queries.py`: the reads: recent periods with their status.
- `profile.py`: creating and editing an estate (profile, feature flags, its own settings).
- `settings_catalog.py`: every named setting with its label, help, type, default and rule.
- `choices.py`: the countries, currencies (CLDR, via Babel) and timezones an estate may have.

The estate administration (estates, units, meters and their replacement, people, grants,
the CSV import mechanism, tenancies) joins this package. Settings live in `app/settings.py`.
"""
