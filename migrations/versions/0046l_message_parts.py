"""Sentences kept as their parts, shown in the reader's language (issue 23).

- reconciliation_results.summary_parts: a check's summary as message parts (msgid and values,
  app/i18n/messages.py); the English `summary` stays for the emails and rows stored before.
- report_subscriptions.title_parts: the report's title as message parts, from the download;
  the English `title` stays for subscriptions made before.

Revision ID: 0046l
Revises: 0045g
"""
from alembic import op
import sqlalchemy as sa


revision = "0046l"
down_revision = "0045g"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("reconciliation_results", schema=None) as batch_op:
        batch_op.add_column(sa.Column("summary_parts", sa.JSON(), nullable=True))
    with op.batch_alter_table("report_subscriptions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("title_parts", sa.JSON(), nullable=True))


def downgrade():
    with op.batch_alter_table("report_subscriptions", schema=None) as batch_op:
        batch_op.drop_column("title_parts")
    with op.batch_alter_table("reconciliation_results", schema=None) as batch_op:
        batch_op.drop_column("summary_parts")
