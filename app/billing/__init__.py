"""Billing: tariffs, pricing consumption into charges, and later statements data, levies, settlement, arrears."""


class BillingError(ValueError):
    """A billing rule refused something; each rule has its own subclass and the message says why."""
