"""Move-out refunds and agents' bulk top-up batches (issue 15: A2, A3).

- refunds: a pocket's credit after the final bill, held on refunds-payable until staff pay it.
- bulk_topups: an agent's confirmed plan of top-ups and, once run, each row's outcome.

Revision ID: 0030
Revises: 0033
"""
from alembic import op
import sqlalchemy as sa


revision = '0030'
down_revision = '0033'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('bulk_topups',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('estate_id', sa.Integer(), nullable=False),
    sa.Column('created_by_user_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('status', sa.String(length=8), nullable=False),
    sa.Column('description', sa.String(length=300), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.Column('total', sa.Numeric(precision=20, scale=6), nullable=False),
    sa.Column('rows', sa.JSON(), nullable=False),
    sa.Column('skipped', sa.JSON(), nullable=False),
    sa.Column('results', sa.JSON(), nullable=True),
    sa.Column('credited', sa.Integer(), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['created_by_user_id'], ['users.id'], name=op.f('fk_bulk_topups_created_by_user_id_users')),
    sa.ForeignKeyConstraint(['estate_id'], ['estates.id'], name=op.f('fk_bulk_topups_estate_id_estates')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_bulk_topups'))
    )
    with op.batch_alter_table('bulk_topups', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_bulk_topups_estate_id'), ['estate_id'], unique=False)

    op.create_table('refunds',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('estate_id', sa.Integer(), nullable=False),
    sa.Column('unit_id', sa.Integer(), nullable=False),
    sa.Column('person_id', sa.Integer(), nullable=False),
    sa.Column('tenancy_id', sa.Integer(), nullable=False),
    sa.Column('utility', sa.String(length=16), nullable=False),
    sa.Column('amount', sa.Numeric(precision=20, scale=6), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('status', sa.String(length=8), nullable=False),
    sa.Column('transaction_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('paid_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('paid_by_user_id', sa.Integer(), nullable=True),
    sa.Column('payout_reference', sa.String(length=100), nullable=True),
    sa.ForeignKeyConstraint(['estate_id'], ['estates.id'], name=op.f('fk_refunds_estate_id_estates')),
    sa.ForeignKeyConstraint(['paid_by_user_id'], ['users.id'], name=op.f('fk_refunds_paid_by_user_id_users')),
    sa.ForeignKeyConstraint(['person_id'], ['persons.id'], name=op.f('fk_refunds_person_id_persons')),
    sa.ForeignKeyConstraint(['tenancy_id'], ['tenancies.id'], name=op.f('fk_refunds_tenancy_id_tenancies')),
    sa.ForeignKeyConstraint(['transaction_id'], ['ledger_transactions.id'], name=op.f('fk_refunds_transaction_id_ledger_transactions')),
    sa.ForeignKeyConstraint(['unit_id'], ['units.id'], name=op.f('fk_refunds_unit_id_units')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_refunds')),
    sa.UniqueConstraint('tenancy_id', 'utility', name=op.f('uq_refunds_tenancy_id_utility'))
    )
    with op.batch_alter_table('refunds', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_refunds_estate_id'), ['estate_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_refunds_person_id'), ['person_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_refunds_unit_id'), ['unit_id'], unique=False)



def downgrade():
    with op.batch_alter_table('refunds', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_refunds_unit_id'))
        batch_op.drop_index(batch_op.f('ix_refunds_person_id'))
        batch_op.drop_index(batch_op.f('ix_refunds_estate_id'))

    op.drop_table('refunds')
    with op.batch_alter_table('bulk_topups', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_bulk_topups_estate_id'))

    op.drop_table('bulk_topups')
