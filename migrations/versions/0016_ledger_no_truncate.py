"""Ledger rows cannot be emptied with TRUNCATE (issue 11 item 13).

Row triggers (append-only, 0001) do not fire on TRUNCATE, so `TRUNCATE postings,
ledger_transactions` erased history unopposed. A statement-level BEFORE TRUNCATE trigger on
each table refuses it, also when the table would be emptied by a TRUNCATE ... CASCADE of
another table. There is deliberately no bypass setting: like the UPDATE/DELETE triggers, it
can be switched off only by the table owner with ALTER TABLE ... DISABLE TRIGGER (the test
suite's cleanup does exactly that, inside its own transaction). PostgreSQL only: SQLite has
no TRUNCATE, and its DELETE triggers already cover `DELETE FROM` without a WHERE.

Revision ID: 0016
Revises: 0015
"""
from alembic import op


revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None

POSTGRES_RULES = """
CREATE FUNCTION ledger_no_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'ledger rows are append-only: TRUNCATE on % refused; post a reversal instead',
    TG_TABLE_NAME USING ERRCODE = 'restrict_violation';
END $$;
CREATE TRIGGER postings_no_truncate BEFORE TRUNCATE ON postings
  FOR EACH STATEMENT EXECUTE FUNCTION ledger_no_truncate();
CREATE TRIGGER ledger_transactions_no_truncate BEFORE TRUNCATE ON ledger_transactions
  FOR EACH STATEMENT EXECUTE FUNCTION ledger_no_truncate();
"""


def upgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute(POSTGRES_RULES)


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS ledger_no_truncate() CASCADE")
