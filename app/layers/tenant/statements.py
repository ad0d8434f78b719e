"""Tenant statements: the unit's months, each issued statement (or a provisional one) as a PDF;
the transactions URL is the history page (T3), and its CSV/PDF export with `?format=`."""
from app.layers.tenant import bp
from app.layers.tenant.history import transactions_page
from app.layers.unit_statements import add_unit_statement_routes

add_unit_statement_routes(bp, ("tenant",), transactions_page=transactions_page)
