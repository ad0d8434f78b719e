"""Shared solar (issue 19, Quantify 11.2): each estate's sharing method and the monthly allocations.

(The emission factors the carbon pages read were created in 0034.)

Revision ID: 0042
Revises: 0031
"""
from alembic import op
import sqlalchemy as sa


revision = '0042'
down_revision = '0041'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('solar_schemes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('estate_id', sa.Integer(), nullable=False),
    sa.Column('method', sa.String(length=12), nullable=False),
    sa.Column('custom_weights', sa.JSON(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['estate_id'], ['estates.id'], name=op.f('fk_solar_schemes_estate_id_estates')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_solar_schemes')),
    sa.UniqueConstraint('estate_id', name=op.f('uq_solar_schemes_estate_id'))
    )
    op.create_table('solar_allocations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('estate_id', sa.Integer(), nullable=False),
    sa.Column('period', sa.String(length=7), nullable=False),
    sa.Column('run', sa.Integer(), nullable=False),
    sa.Column('unit_id', sa.Integer(), nullable=False),
    sa.Column('method', sa.String(length=12), nullable=False),
    sa.Column('weight', sa.Numeric(precision=20, scale=6), nullable=False),
    sa.Column('generation', sa.Numeric(precision=18, scale=3), nullable=False),
    sa.Column('used', sa.Numeric(precision=18, scale=3), nullable=False),
    sa.Column('kwh', sa.Numeric(precision=18, scale=3), nullable=False),
    sa.Column('solar_rate', sa.Numeric(precision=20, scale=6), nullable=False),
    sa.Column('grid_rate', sa.Numeric(precision=20, scale=6), nullable=False),
    sa.Column('solar_amount', sa.Numeric(precision=20, scale=6), nullable=False),
    sa.Column('grid_credit', sa.Numeric(precision=20, scale=6), nullable=False),
    sa.Column('transaction_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['estate_id'], ['estates.id'], name=op.f('fk_solar_allocations_estate_id_estates')),
    sa.ForeignKeyConstraint(['transaction_id'], ['ledger_transactions.id'], name=op.f('fk_solar_allocations_transaction_id_ledger_transactions')),
    sa.ForeignKeyConstraint(['unit_id'], ['units.id'], name=op.f('fk_solar_allocations_unit_id_units')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_solar_allocations')),
    sa.UniqueConstraint('estate_id', 'period', 'run', 'unit_id', name=op.f('uq_solar_allocations_estate_id_period_run_unit_id'))
    )
    with op.batch_alter_table('solar_allocations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_solar_allocations_estate_id'), ['estate_id'], unique=False)


def downgrade():
    with op.batch_alter_table('solar_allocations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_solar_allocations_estate_id'))
    op.drop_table('solar_allocations')
    op.drop_table('solar_schemes')
