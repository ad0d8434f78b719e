"""Metering pipeline (issue 3): tariffs, roll-ups, dead letters, relay commands.

Revision ID: 0002
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def _id():
    return sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), primary_key=True)


def upgrade():
    op.create_table(
        'tariff_versions',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('estate_id', sa.Integer(), sa.ForeignKey('estates.id', name='fk_tariff_versions_estate_id_estates'), nullable=False),
        sa.Column('utility', sa.String(16), nullable=False),
        sa.Column('effective_from', sa.Date(), nullable=False),
        sa.Column('kind', sa.String(8), nullable=False),
        sa.Column('rates', sa.JSON(), nullable=False),
        sa.Column('standing_charge', sa.Numeric(20, 6), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name='pk_tariff_versions'),
        sa.UniqueConstraint('estate_id', 'utility', 'effective_from',
                            name='uq_tariff_versions_estate_id_utility_effective_from'),
    )
    op.create_table(
        'consumption_rollups',
        _id(),
        sa.Column('meter_id', sa.Integer(), sa.ForeignKey('meters.id', name='fk_consumption_rollups_meter_id_meters'), nullable=False),
        sa.Column('grain', sa.String(5), nullable=False),
        sa.Column('period_start', sa.DateTime(timezone=True), nullable=False),
        sa.Column('consumption', sa.Numeric(20, 6), nullable=False),
        sa.Column('readings', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('id', name='pk_consumption_rollups'),
        sa.UniqueConstraint('meter_id', 'grain', 'period_start',
                            name='uq_consumption_rollups_meter_id_grain_period_start'),
    )
    op.create_table(
        'dead_letters',
        _id(),
        sa.Column('topic', sa.String(300), nullable=False),
        sa.Column('payload', sa.Text(), nullable=False),
        sa.Column('reason', sa.String(500), nullable=False),
        sa.Column('meter_serial', sa.String(64), nullable=True),
        sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('replayed_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('replay_outcome', sa.String(500), nullable=True),
        sa.PrimaryKeyConstraint('id', name='pk_dead_letters'),
    )
    op.create_index('ix_dead_letters_meter_serial', 'dead_letters', ['meter_serial'])
    op.create_index('ix_dead_letters_received_at', 'dead_letters', ['received_at'])
    op.create_table(
        'meter_alerts',
        _id(),
        sa.Column('meter_id', sa.Integer(), sa.ForeignKey('meters.id', name='fk_meter_alerts_meter_id_meters'), nullable=False),
        sa.Column('kind', sa.String(24), nullable=False),
        sa.Column('detail', sa.String(500), nullable=False),
        sa.Column('raised_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name='pk_meter_alerts'),
    )
    op.create_index('ix_meter_alerts_meter_id', 'meter_alerts', ['meter_id'])
    op.create_table(
        'relay_commands',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('command_id', sa.String(64), nullable=False),
        sa.Column('meter_id', sa.Integer(), sa.ForeignKey('meters.id', name='fk_relay_commands_meter_id_meters'), nullable=False),
        sa.Column('state', sa.String(4), nullable=False),
        sa.Column('topic', sa.String(300), nullable=False),
        sa.Column('reason', sa.String(200), nullable=False),
        sa.Column('status', sa.String(12), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('published_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('acknowledged_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('ack_payload', sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint('id', name='pk_relay_commands'),
        sa.UniqueConstraint('command_id', name='uq_relay_commands_command_id'),
    )
    op.create_index('ix_relay_commands_meter_id', 'relay_commands', ['meter_id'])
    op.create_index('ix_relay_commands_status', 'relay_commands', ['status'])
    op.create_table(
        'ingest_api_keys',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('name', sa.String(100), nullable=False),
        sa.Column('key_hash', sa.String(64), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id', name='pk_ingest_api_keys'),
        sa.UniqueConstraint('key_hash', name='uq_ingest_api_keys_key_hash'),
    )


def downgrade():
    op.drop_table('ingest_api_keys')
    op.drop_table('relay_commands')
    op.drop_table('meter_alerts')
    op.drop_table('dead_letters')
    op.drop_table('consumption_rollups')
    op.drop_table('tariff_versions')
