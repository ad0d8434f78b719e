"""Sources (issue 7): Koios payments, ThunderCloud fetch.

Revision ID: 0008
Revises: 0007
"""
from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'thundercloud_exports',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(200), nullable=False),
        sa.Column('sha256', sa.String(64), nullable=False),
        sa.Column('origin', sa.String(8), nullable=False),
        sa.Column('site', sa.String(64), nullable=True),
        sa.Column('day', sa.Date(), nullable=True),
        sa.Column('file_format', sa.String(8), nullable=False),
        sa.Column('size_bytes', sa.Integer(), nullable=False),
        sa.Column('rows', sa.Integer(), nullable=False),
        sa.Column('new_heartbeats', sa.Integer(), nullable=False),
        sa.Column('new_payments', sa.Integer(), nullable=False),
        sa.Column('refused', sa.Integer(), nullable=False),
        sa.Column('imported_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_thundercloud_exports')),
        sa.UniqueConstraint('name', 'sha256', name=op.f('uq_thundercloud_exports_name_sha256')),
    )
    op.create_index(op.f('ix_thundercloud_exports_name'), 'thundercloud_exports', ['name'])
    op.create_table(
        'koios_payments',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('koios_id', sa.String(64), nullable=False),
        sa.Column('origin', sa.String(10), nullable=False),
        sa.Column('customer_code', sa.String(64), nullable=True),
        sa.Column('amount', sa.Numeric(20, 6), nullable=False),
        sa.Column('currency', sa.String(3), nullable=True),
        sa.Column('paid_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('memo', sa.String(300), nullable=True),
        sa.Column('external_id', sa.String(128), nullable=True),
        sa.Column('payment_id', sa.Integer(), nullable=True),
        sa.Column('estate_id', sa.Integer(), nullable=True),
        sa.Column('unit_id', sa.Integer(), nullable=True),
        sa.Column('meter_serial', sa.String(64), nullable=True),
        sa.Column('imported_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('matched_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['payment_id'], ['payments.id'], name=op.f('fk_koios_payments_payment_id_payments')),
        sa.ForeignKeyConstraint(['estate_id'], ['estates.id'], name=op.f('fk_koios_payments_estate_id_estates')),
        sa.ForeignKeyConstraint(['unit_id'], ['units.id'], name=op.f('fk_koios_payments_unit_id_units')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_koios_payments')),
        sa.UniqueConstraint('koios_id', name=op.f('uq_koios_payments_koios_id')),
    )
    for column in ('customer_code', 'estate_id', 'unit_id'):
        op.create_index(op.f(f'ix_koios_payments_{column}'), 'koios_payments', [column])


def downgrade():
    for column in ('customer_code', 'estate_id', 'unit_id'):
        op.drop_index(op.f(f'ix_koios_payments_{column}'), table_name='koios_payments')
    op.drop_table('koios_payments')
    op.drop_index(op.f('ix_thundercloud_exports_name'), table_name='thundercloud_exports')
    op.drop_table('thundercloud_exports')
