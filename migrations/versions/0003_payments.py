"""Payments (issue 4): payments, SMS messages, EFT imports.

Revision ID: 0003
Revises: 0002
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('payments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('provider', sa.String(length=16), nullable=False),
    sa.Column('provider_ref', sa.String(length=64), nullable=True),
    sa.Column('checkout_id', sa.String(length=32), nullable=True),
    sa.Column('reference', sa.String(length=100), nullable=True),
    sa.Column('estate_id', sa.Integer(), nullable=True),
    sa.Column('unit_id', sa.Integer(), nullable=True),
    sa.Column('utility', sa.String(length=16), nullable=True),
    sa.Column('amount', sa.Numeric(20, 6), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('status_reason', sa.String(length=300), nullable=True),
    sa.Column('payer_name', sa.String(length=200), nullable=True),
    sa.Column('payer_phone', sa.String(length=32), nullable=True),
    sa.Column('payer_email', sa.String(length=254), nullable=True),
    sa.Column('paid_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('transaction_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('created_by_user_id', sa.Integer(), nullable=True),
    sa.Column('raw', sa.JSON(), nullable=True),
    sa.Column('vendor_push_status', sa.String(length=8), nullable=True),
    sa.Column('vendor_push_result', sa.String(length=300), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('credited_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['created_by_user_id'], ['users.id'], name=op.f('fk_payments_created_by_user_id_users')),
    sa.ForeignKeyConstraint(['estate_id'], ['estates.id'], name=op.f('fk_payments_estate_id_estates')),
    sa.ForeignKeyConstraint(['transaction_id'], ['ledger_transactions.id'], name=op.f('fk_payments_transaction_id_ledger_transactions')),
    sa.ForeignKeyConstraint(['unit_id'], ['units.id'], name=op.f('fk_payments_unit_id_units')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payments')),
    sa.UniqueConstraint('checkout_id', name=op.f('uq_payments_checkout_id')),
    sa.UniqueConstraint('provider', 'provider_ref', name=op.f('uq_payments_provider_provider_ref'))
    )
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_payments_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_payments_estate_id'), ['estate_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_payments_status'), ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_payments_unit_id'), ['unit_id'], unique=False)

    op.create_table('sms_messages',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('gateway_id', sa.String(length=100), nullable=False),
    sa.Column('from_number', sa.String(length=32), nullable=False),
    sa.Column('content', sa.Text(), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.String(length=300), nullable=True),
    sa.Column('payment_id', sa.Integer(), nullable=True),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['payment_id'], ['payments.id'], name=op.f('fk_sms_messages_payment_id_payments')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sms_messages')),
    sa.UniqueConstraint('gateway_id', name=op.f('uq_sms_messages_gateway_id'))
    )


def downgrade():
    op.drop_table('sms_messages')
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_payments_unit_id'))
        batch_op.drop_index(batch_op.f('ix_payments_status'))
        batch_op.drop_index(batch_op.f('ix_payments_estate_id'))
        batch_op.drop_index(batch_op.f('ix_payments_created_at'))
    op.drop_table('payments')
