"""Billing: tariffs, and later statements data, levies, settlement, arrears."""
