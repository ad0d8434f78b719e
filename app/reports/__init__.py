"""Queries behind dashboards, and exports."""
