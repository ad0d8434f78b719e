"""Utility layer (issue 19): stored daily losses, meter anomaly scores, revenue-assurance cases,
demand events and carbon emission factors.

Revision ID: 0034
Revises: 0030
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0034'
down_revision = '0030'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('emission_factors',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('country', sa.String(length=2), nullable=False),
    sa.Column('utility', sa.String(length=16), nullable=False),
    sa.Column('effective_from', sa.Date(), nullable=False),
    sa.Column('kg_per_unit', sa.Numeric(precision=10, scale=4), nullable=False),
    sa.Column('source', sa.String(length=200), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_emission_factors')),
    sa.UniqueConstraint('country', 'utility', 'effective_from', name=op.f('uq_emission_factors_country_utility_effective_from'))
    )
    op.create_table('demand_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('estate_id', sa.Integer(), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('peak_kw', sa.Numeric(precision=12, scale=3), nullable=False),
    sa.Column('threshold_kw', sa.Numeric(precision=12, scale=3), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('held_meter_ids', sa.JSON(), nullable=False),
    sa.Column('below_since', sa.DateTime(timezone=True), nullable=True),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['estate_id'], ['estates.id'], name=op.f('fk_demand_events_estate_id_estates')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_demand_events'))
    )
    with op.batch_alter_table('demand_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_demand_events_estate_id'), ['estate_id'], unique=False)

    op.create_table('loss_days',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('estate_id', sa.Integer(), nullable=False),
    sa.Column('utility', sa.String(length=16), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('bulk', sa.Numeric(precision=18, scale=3), nullable=False),
    sa.Column('units', sa.Numeric(precision=18, scale=3), nullable=False),
    sa.Column('complete', sa.Boolean(), nullable=False),
    sa.Column('missing_meters', sa.Integer(), nullable=False),
    sa.Column('loss_percent', sa.Numeric(precision=7, scale=2), nullable=True),
    sa.Column('threshold', sa.Numeric(precision=5, scale=2), nullable=False),
    sa.Column('over_threshold', sa.Boolean(), nullable=False),
    sa.Column('alerted', sa.Boolean(), nullable=False),
    sa.Column('computed_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['estate_id'], ['estates.id'], name=op.f('fk_loss_days_estate_id_estates')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_loss_days')),
    sa.UniqueConstraint('estate_id', 'utility', 'day', name=op.f('uq_loss_days_estate_id_utility_day'))
    )
    with op.batch_alter_table('loss_days', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_loss_days_estate_id'), ['estate_id'], unique=False)

    op.create_table('meter_anomalies',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('estate_id', sa.Integer(), nullable=False),
    sa.Column('meter_id', sa.Integer(), nullable=False),
    sa.Column('unit_id', sa.Integer(), nullable=True),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('score', sa.Integer(), nullable=False),
    sa.Column('consumption', sa.Numeric(precision=18, scale=3), nullable=False),
    sa.Column('parts', sa.JSON(), nullable=False),
    sa.Column('computed_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['estate_id'], ['estates.id'], name=op.f('fk_meter_anomalies_estate_id_estates')),
    sa.ForeignKeyConstraint(['meter_id'], ['meters.id'], name=op.f('fk_meter_anomalies_meter_id_meters')),
    sa.ForeignKeyConstraint(['unit_id'], ['units.id'], name=op.f('fk_meter_anomalies_unit_id_units')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_meter_anomalies')),
    sa.UniqueConstraint('meter_id', 'day', name=op.f('uq_meter_anomalies_meter_id_day'))
    )
    with op.batch_alter_table('meter_anomalies', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_meter_anomalies_estate_id'), ['estate_id'], unique=False)

    op.create_table('revenue_cases',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('estate_id', sa.Integer(), nullable=False),
    sa.Column('meter_id', sa.Integer(), nullable=False),
    sa.Column('unit_id', sa.Integer(), nullable=True),
    sa.Column('opened_on', sa.Date(), nullable=False),
    sa.Column('score', sa.Integer(), nullable=False),
    sa.Column('parts', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('assigned_user_id', sa.Integer(), nullable=True),
    sa.Column('note', sa.String(length=1000), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['assigned_user_id'], ['users.id'], name=op.f('fk_revenue_cases_assigned_user_id_users')),
    sa.ForeignKeyConstraint(['estate_id'], ['estates.id'], name=op.f('fk_revenue_cases_estate_id_estates')),
    sa.ForeignKeyConstraint(['meter_id'], ['meters.id'], name=op.f('fk_revenue_cases_meter_id_meters')),
    sa.ForeignKeyConstraint(['unit_id'], ['units.id'], name=op.f('fk_revenue_cases_unit_id_units')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_revenue_cases'))
    )
    with op.batch_alter_table('revenue_cases', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_revenue_cases_estate_id'), ['estate_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_revenue_cases_meter_id'), ['meter_id'], unique=False)



def downgrade():
    with op.batch_alter_table('revenue_cases', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_revenue_cases_meter_id'))
        batch_op.drop_index(batch_op.f('ix_revenue_cases_estate_id'))

    op.drop_table('revenue_cases')
    with op.batch_alter_table('meter_anomalies', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_meter_anomalies_estate_id'))

    op.drop_table('meter_anomalies')
    with op.batch_alter_table('loss_days', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_loss_days_estate_id'))

    op.drop_table('loss_days')
    with op.batch_alter_table('demand_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_demand_events_estate_id'))

    op.drop_table('demand_events')
    op.drop_table('emission_factors')
