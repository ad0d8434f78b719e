"""Estates: the administration of estates, units and their status (occupancy, financial periods).

- `status.py`: the writes: a unit's occupancy (with history) and closing or locking a period.
- `queries.py`: the reads: recent periods with their status.
- `notes.py`: case notes on units and people (append-only), read by staff and the estate's agents.

The estate administration (estates, units, meters and their replacement, people, grants,
the CSV import mechanism, tenancies) joins this package. Settings live in `app/settings.py`.
"""
