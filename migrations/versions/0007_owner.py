"""Owner layer (issue 5): pocket postings rolled up per account, month and kind.

Revision ID: 0007
Revises: 0006
"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('pocket_flow_totals',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('period', sa.String(length=7), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('amount', sa.Numeric(precision=20, scale=6), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_pocket_flow_totals_account_id_accounts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pocket_flow_totals')),
    sa.UniqueConstraint('account_id', 'period', 'kind', name=op.f('uq_pocket_flow_totals_account_id_period_kind'))
    )
    op.create_table('pocket_flow_watermarks',
    sa.Column('estate_id', sa.Integer(), nullable=False),
    sa.Column('last_seq', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['estate_id'], ['estates.id'], name=op.f('fk_pocket_flow_watermarks_estate_id_estates')),
    sa.PrimaryKeyConstraint('estate_id', name=op.f('pk_pocket_flow_watermarks'))
    )


def downgrade():
    op.drop_table('pocket_flow_watermarks')
    op.drop_table('pocket_flow_totals')
