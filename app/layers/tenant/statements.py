"""Tenant statements: the unit's months, each issued statement (or a provisional one) as a PDF."""
from app.layers.tenant import bp
from app.layers.unit_statements import add_unit_statement_routes

add_unit_statement_routes(bp, ("tenant",))
