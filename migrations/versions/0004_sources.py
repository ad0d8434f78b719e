"""Sources (issue 7): UISP and SparkMeter local copies.

Revision ID: 0004
Revises: 0003
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def _source_columns():
    """Columns every source copy shares: the source's id, when it changed, when it vanished."""
    return [
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('uisp_id', sa.Integer(), nullable=False),
        sa.Column('changed_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('removed_at', sa.DateTime(timezone=True), nullable=True),
    ]


def _money(name, nullable=False):
    return sa.Column(name, sa.Numeric(20, 6), nullable=nullable)


def upgrade():
    op.create_table(
        'uisp_clients', *_source_columns(),
        sa.Column('estate_id', sa.Integer(), nullable=True),
        sa.Column('user_ident', sa.String(64), nullable=True),
        sa.Column('name', sa.String(200), nullable=False),
        sa.Column('email', sa.String(254), nullable=True),
        sa.Column('phone', sa.String(32), nullable=True),
        sa.Column('is_active', sa.Boolean(), nullable=False),
        sa.Column('is_archived', sa.Boolean(), nullable=False),
        sa.Column('is_vip', sa.Boolean(), nullable=False),
        sa.Column('grace_payment_day', sa.Integer(), nullable=True),
        _money('account_balance'), _money('account_outstanding'),
        sa.Column('currency', sa.String(3), nullable=True),
        sa.Column('has_suspended_service', sa.Boolean(), nullable=False),
        sa.Column('on_time_count', sa.Integer(), nullable=False),
        sa.Column('late_count', sa.Integer(), nullable=False),
        sa.Column('missed_count', sa.Integer(), nullable=False),
        _money('average_days_late', True), _money('average_payment', True),
        sa.Column('last_payment_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('risky', sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(['estate_id'], ['estates.id'], name=op.f('fk_uisp_clients_estate_id_estates')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_uisp_clients')),
        sa.UniqueConstraint('uisp_id', name=op.f('uq_uisp_clients_uisp_id')),
    )
    op.create_index(op.f('ix_uisp_clients_estate_id'), 'uisp_clients', ['estate_id'])
    op.create_table(
        'uisp_services', *_source_columns(),
        sa.Column('client_uisp_id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(200), nullable=False),
        sa.Column('status', sa.Integer(), nullable=False),
        _money('price'),
        sa.Column('active_from', sa.Date(), nullable=True),
        sa.Column('active_to', sa.Date(), nullable=True),
        sa.ForeignKeyConstraint(['client_uisp_id'], ['uisp_clients.uisp_id'],
                                name=op.f('fk_uisp_services_client_uisp_id_uisp_clients')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_uisp_services')),
        sa.UniqueConstraint('uisp_id', name=op.f('uq_uisp_services_uisp_id')),
    )
    op.create_index(op.f('ix_uisp_services_client_uisp_id'), 'uisp_services', ['client_uisp_id'])
    op.create_table(
        'uisp_invoices', *_source_columns(),
        sa.Column('client_uisp_id', sa.Integer(), nullable=False),
        sa.Column('number', sa.String(64), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('due_date', sa.Date(), nullable=True),
        _money('total'), _money('amount_paid'), _money('amount_to_pay'),
        sa.Column('currency', sa.String(3), nullable=False),
        sa.Column('status', sa.Integer(), nullable=False),
        sa.Column('paid', sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(['client_uisp_id'], ['uisp_clients.uisp_id'],
                                name=op.f('fk_uisp_invoices_client_uisp_id_uisp_clients')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_uisp_invoices')),
        sa.UniqueConstraint('uisp_id', name=op.f('uq_uisp_invoices_uisp_id')),
    )
    op.create_index(op.f('ix_uisp_invoices_client_uisp_id'), 'uisp_invoices', ['client_uisp_id'])
    op.create_table(
        'uisp_payments', *_source_columns(),
        sa.Column('client_uisp_id', sa.Integer(), nullable=False),
        _money('amount'),
        sa.Column('currency', sa.String(3), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('method', sa.String(64), nullable=True),
        sa.Column('provider_payment_id', sa.String(128), nullable=True),
        sa.Column('covers', sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(['client_uisp_id'], ['uisp_clients.uisp_id'],
                                name=op.f('fk_uisp_payments_client_uisp_id_uisp_clients')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_uisp_payments')),
        sa.UniqueConstraint('uisp_id', name=op.f('uq_uisp_payments_uisp_id')),
    )
    op.create_index(op.f('ix_uisp_payments_client_uisp_id'), 'uisp_payments', ['client_uisp_id'])

    op.create_table(
        'thundercloud_heartbeats',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('heartbeat_id', sa.String(64), nullable=False),
        sa.Column('meter_serial', sa.String(64), nullable=False),
        sa.Column('customer_code', sa.String(64), nullable=True),
        sa.Column('taken_at', sa.DateTime(timezone=True), nullable=False),
        _money('credit_balance'),
        sa.Column('imported_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_thundercloud_heartbeats')),
        sa.UniqueConstraint('heartbeat_id', name=op.f('uq_thundercloud_heartbeats_heartbeat_id')),
    )
    op.create_index(op.f('ix_thundercloud_heartbeats_meter_serial'), 'thundercloud_heartbeats', ['meter_serial'])
    op.create_table(
        'thundercloud_payments',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('heartbeat_id', sa.String(64), nullable=False),
        sa.Column('previous_heartbeat_id', sa.String(64), nullable=False),
        sa.Column('meter_serial', sa.String(64), nullable=False),
        sa.Column('customer_code', sa.String(64), nullable=True),
        sa.Column('detected_at', sa.DateTime(timezone=True), nullable=False),
        _money('amount'), _money('kwh'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_thundercloud_payments')),
        sa.UniqueConstraint('heartbeat_id', name=op.f('uq_thundercloud_payments_heartbeat_id')),
    )
    op.create_index(op.f('ix_thundercloud_payments_meter_serial'), 'thundercloud_payments', ['meter_serial'])


def downgrade():
    for table in ('thundercloud_payments', 'thundercloud_heartbeats'):
        op.drop_index(op.f(f'ix_{table}_meter_serial'), table_name=table)
        op.drop_table(table)
    for table in ('uisp_payments', 'uisp_invoices', 'uisp_services'):
        op.drop_index(op.f(f'ix_{table}_client_uisp_id'), table_name=table)
        op.drop_table(table)
    op.drop_index(op.f('ix_uisp_clients_estate_id'), table_name='uisp_clients')
    op.drop_table('uisp_clients')
