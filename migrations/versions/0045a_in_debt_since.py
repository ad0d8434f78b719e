"""A wallet pocket's "in debt since" kept next to its cached balance (issue 16, A4 bench goal).

- accounts.in_debt_since: for a pocket, the occurred_at of the transaction at which its running
  balance (ledger order: seq) last went from zero or above to below zero; null while the balance
  is zero or above. app.ledger keeps it in the transaction that posts; `ledger verify` checks it.
  Backfilled here from the postings (one window query over the pockets below zero).

Revision ID: 0045a
Revises: 0044
"""
from datetime import UTC, datetime

from alembic import op
import sqlalchemy as sa


revision = '0045a'
down_revision = '0044'
branch_labels = None
depends_on = None

# The same recomputation as app.ledger.verify's check (kept here: migrations import no app code).
LAST_CROSSINGS = sa.text(
    "WITH moves AS ("
    " SELECT p.account_id, t.seq, t.occurred_at, SUM(p.amount) AS amount"
    " FROM postings p JOIN ledger_transactions t ON t.id = p.transaction_id"
    " JOIN accounts a ON a.id = p.account_id"
    " WHERE a.kind = 'pocket' AND a.balance < 0"
    " GROUP BY p.account_id, t.seq, t.occurred_at"
    "), running AS ("
    " SELECT account_id, seq, occurred_at, amount,"
    " SUM(amount) OVER (PARTITION BY account_id ORDER BY seq) AS after FROM moves"
    # rounded: SQLite sums amounts as REALs
    ") SELECT account_id, seq, occurred_at FROM running"
    " WHERE ROUND(after, 6) < 0 AND ROUND(after - amount, 6) >= 0"
)


def _utc(moment, naive: bool):
    if isinstance(moment, str):  # SQLite
        moment = datetime.fromisoformat(moment)
    moment = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    return moment.replace(tzinfo=None) if naive else moment


def upgrade():
    op.add_column('accounts', sa.Column('in_debt_since', sa.DateTime(timezone=True), nullable=True))
    backfill(op.get_bind())


def backfill(connection) -> None:
    """Date every pocket below zero from its postings (bench/arrears.py fills its fixture with this)."""
    last: dict[int, tuple[int, datetime]] = {}
    for account_id, seq, occurred_at in connection.execute(LAST_CROSSINGS):
        if account_id not in last or seq > last[account_id][0]:
            last[account_id] = (seq, occurred_at)
    if last:
        accounts = sa.table('accounts', sa.column('id', sa.Integer), sa.column('in_debt_since', sa.DateTime(timezone=True)))
        naive = connection.dialect.name == "sqlite"  # stored as naive UTC there, as the app's type does
        rows = [{"account": account_id, "since": _utc(at, naive)} for account_id, (_, at) in last.items()]
        for start in range(0, len(rows), 5000):
            connection.execute(accounts.update().where(accounts.c.id == sa.bindparam("account"))
                               .values(in_debt_since=sa.bindparam("since")), rows[start:start + 5000])


def downgrade():
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.drop_column('in_debt_since')
