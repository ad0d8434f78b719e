"""Family wallets (F1): one payment distributed over a wallet group, and what each wallet gets.

Revision ID: 0041
Revises: 0031
"""
from alembic import op
import sqlalchemy as sa


revision = '0041'
down_revision = '0039'
branch_labels = None
depends_on = None

AMOUNT = sa.Numeric(precision=20, scale=6)
TRANSACTION_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade():
    op.create_table('wallet_distributions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('payment_id', sa.Integer(), nullable=False),
    sa.Column('group_id', sa.Integer(), nullable=True),
    sa.Column('rule', sa.String(length=8), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('utility', sa.String(length=16), nullable=False),
    sa.Column('target', AMOUNT, nullable=True),
    sa.Column('remainder_unit_id', sa.Integer(), nullable=True),
    sa.Column('created_by_user_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['payment_id'], ['payments.id'], name=op.f('fk_wallet_distributions_payment_id_payments')),
    sa.ForeignKeyConstraint(['group_id'], ['wallet_groups.id'], name=op.f('fk_wallet_distributions_group_id_wallet_groups'),
                            ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['remainder_unit_id'], ['units.id'], name=op.f('fk_wallet_distributions_remainder_unit_id_units')),
    sa.ForeignKeyConstraint(['created_by_user_id'], ['users.id'], name=op.f('fk_wallet_distributions_created_by_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_wallet_distributions')),
    sa.UniqueConstraint('payment_id', name=op.f('uq_wallet_distributions_payment_id'))
    )
    with op.batch_alter_table('wallet_distributions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_wallet_distributions_group_id'), ['group_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_wallet_distributions_created_by_user_id'), ['created_by_user_id'],
                              unique=False)

    op.create_table('wallet_distribution_legs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('distribution_id', sa.Integer(), nullable=False),
    sa.Column('unit_id', sa.Integer(), nullable=False),
    sa.Column('estate_id', sa.Integer(), nullable=False),
    sa.Column('amount', AMOUNT, nullable=False),
    sa.Column('transaction_id', TRANSACTION_ID, nullable=True),
    sa.ForeignKeyConstraint(['distribution_id'], ['wallet_distributions.id'],
                            name=op.f('fk_wallet_distribution_legs_distribution_id_wallet_distributions'),
                            ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['unit_id'], ['units.id'], name=op.f('fk_wallet_distribution_legs_unit_id_units')),
    sa.ForeignKeyConstraint(['estate_id'], ['estates.id'], name=op.f('fk_wallet_distribution_legs_estate_id_estates')),
    sa.ForeignKeyConstraint(['transaction_id'], ['ledger_transactions.id'],
                            name=op.f('fk_wallet_distribution_legs_transaction_id_ledger_transactions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_wallet_distribution_legs')),
    sa.UniqueConstraint('distribution_id', 'unit_id', name=op.f('uq_wallet_distribution_legs_distribution_id_unit_id'))
    )
    with op.batch_alter_table('wallet_distribution_legs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_wallet_distribution_legs_distribution_id'), ['distribution_id'],
                              unique=False)
        batch_op.create_index(batch_op.f('ix_wallet_distribution_legs_unit_id'), ['unit_id'], unique=False)


def downgrade():
    op.drop_table('wallet_distribution_legs')
    op.drop_table('wallet_distributions')
