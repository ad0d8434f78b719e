"""Statement copies per recipient (issue 18) and settlement statements emailed (issue 20).

- statements.tenant_pdf: the tenant's copy of a month's statement, without the owner's levy
  section (set only when the statement has one; the owner's copy stays in `pdf`).
- settlement_lines.statement_sent_at / statement_sent_to / statement_outcome: when, to whom
  and how (sent, or logged without MAIL_URL) the party's settlement statement of that run
  went out (once per run and party).

Revision ID: 0044
Revises: 0031
"""
from alembic import op
import sqlalchemy as sa


revision = "0044"
down_revision = '0043'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("statements", schema=None) as batch_op:
        batch_op.add_column(sa.Column("tenant_pdf", sa.LargeBinary(), nullable=True))
    with op.batch_alter_table("settlement_lines", schema=None) as batch_op:
        batch_op.add_column(sa.Column("statement_sent_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("statement_sent_to", sa.String(length=254), nullable=True))
        batch_op.add_column(sa.Column("statement_outcome", sa.String(length=8), nullable=True))


def downgrade():
    with op.batch_alter_table("settlement_lines", schema=None) as batch_op:
        batch_op.drop_column("statement_outcome")
        batch_op.drop_column("statement_sent_to")
        batch_op.drop_column("statement_sent_at")
    with op.batch_alter_table("statements", schema=None) as batch_op:
        batch_op.drop_column("tenant_pdf")
