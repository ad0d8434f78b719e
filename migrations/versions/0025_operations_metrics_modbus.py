"""Operations (issue 22): batch time for /metrics, and what the Modbus poller saw of each device.

- ingest_heartbeats.last_batch_seconds: how long the worker's last batch took.
- modbus_device_status: one row per wired meter polled over Modbus (M9): state, last good poll,
  the last error and how many polls in a row failed, for the staff meter page.

Revision ID: 0025
Revises: 0024
"""
from alembic import op
import sqlalchemy as sa


revision = '0025'
down_revision = '0024'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('ingest_heartbeats', schema=None) as batch_op:
        batch_op.add_column(sa.Column('last_batch_seconds', sa.Float(), nullable=True))
    op.create_table(
        'modbus_device_status',
        sa.Column('meter_serial', sa.String(length=64), nullable=False),
        sa.Column('address', sa.String(length=255), nullable=False),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('last_poll_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('last_ok_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('last_error', sa.String(length=500), nullable=True),
        sa.Column('failing_since', sa.DateTime(timezone=True), nullable=True),
        sa.Column('failures', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('meter_serial', name=op.f('pk_modbus_device_status')),
    )


def downgrade():
    op.drop_table('modbus_device_status')
    with op.batch_alter_table('ingest_heartbeats', schema=None) as batch_op:
        batch_op.drop_column('last_batch_seconds')
