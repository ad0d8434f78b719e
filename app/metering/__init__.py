"""Meter data: decoders, validation (VEE), the ingest pipeline, roll-ups, credit control, queries."""


class MeteringError(ValueError):
    """A metering rule refused something; each rule has its own subclass and the message says why."""
