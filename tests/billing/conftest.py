"""Billing fixtures: the metering estate (a funded unit on a flat R2.00/kWh tariff) and its helpers."""
from tests.metering.conftest import _forget_request_actor, fresh_rate_limits, metered, staff_client  # noqa: F401
