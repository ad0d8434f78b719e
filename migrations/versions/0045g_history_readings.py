"""History-only readings (issue 22): a meter's billing start, and a backfill's history count.

- meters.history_before: readings of the meter stamped before this moment were stored by a
  history-only ingest (a vendor backfill before go-live) and were never billed; it is the
  meter's billing start (its first billed reading) when history was first stored.
- source_backfills.history: how many of a backfill's new readings were stored as history.

Revision ID: 0045g
Revises: 0044
"""
from alembic import op
import sqlalchemy as sa


revision = "0045g"
down_revision = "0045b"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("meters", schema=None) as batch_op:
        batch_op.add_column(sa.Column("history_before", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("source_backfills", schema=None) as batch_op:
        batch_op.add_column(sa.Column("history", sa.Integer(), nullable=False, server_default="0"))


def downgrade():
    with op.batch_alter_table("source_backfills", schema=None) as batch_op:
        batch_op.drop_column("history")
    with op.batch_alter_table("meters", schema=None) as batch_op:
        batch_op.drop_column("history_before")
