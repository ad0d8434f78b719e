"""Meter data: decoders, validation (VEE), the ingest pipeline, roll-ups, credit control, queries."""
