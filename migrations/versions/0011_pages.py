"""Page speed (issue 5): indexes for the tenant dashboard's recent activity and the owner portfolio.

- ledger_transactions(occurred_at): a pocket's latest postings are read from the transactions
  since a bound instead of sorting the pocket's whole history (app.reports.summaries);
- consumption_rollups(period_start, meter_id) for month rows only: one month of many meters
  (the portfolio's this-month consumption) is one range scan; small, and roll-up updates stay
  HOT (no updated column is indexed).

Revision ID: 0011
Revises: 0010
"""
from alembic import op
import sqlalchemy as sa


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('ledger_transactions', schema=None) as batch_op:
        batch_op.create_index('ix_ledger_transactions_occurred_at', ['occurred_at'], unique=False)
    with op.batch_alter_table('consumption_rollups', schema=None) as batch_op:
        batch_op.create_index('ix_consumption_rollups_month_period_start', ['period_start', 'meter_id'],
                              unique=False, postgresql_where=sa.text("grain = 'month'"),
                              sqlite_where=sa.text("grain = 'month'"))


def downgrade():
    with op.batch_alter_table('consumption_rollups', schema=None) as batch_op:
        batch_op.drop_index('ix_consumption_rollups_month_period_start')
    with op.batch_alter_table('ledger_transactions', schema=None) as batch_op:
        batch_op.drop_index('ix_ledger_transactions_occurred_at')
