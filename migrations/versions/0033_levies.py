"""Levies (B3): levy definitions and the charges each levy run posted.

Revision ID: 0033
Revises: 0037
"""
from alembic import op
import sqlalchemy as sa


revision = '0033'
down_revision = '0037'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('levy_definitions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('estate_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('amount', sa.Numeric(precision=20, scale=6), nullable=False),
    sa.Column('frequency', sa.String(length=12), nullable=False),
    sa.Column('charge_month', sa.Integer(), nullable=True),
    sa.Column('allocation', sa.String(length=12), nullable=False),
    sa.Column('effective_from', sa.String(length=7), nullable=False),
    sa.Column('effective_to', sa.String(length=7), nullable=True),
    sa.Column('unit_ids', sa.JSON(), nullable=True),
    sa.Column('custom_amounts', sa.JSON(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by_user_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['created_by_user_id'], ['users.id'], name=op.f('fk_levy_definitions_created_by_user_id_users')),
    sa.ForeignKeyConstraint(['estate_id'], ['estates.id'], name=op.f('fk_levy_definitions_estate_id_estates')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_levy_definitions')),
    sa.UniqueConstraint('estate_id', 'name', name=op.f('uq_levy_definitions_estate_id_name'))
    )
    with op.batch_alter_table('levy_definitions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_levy_definitions_estate_id'), ['estate_id'], unique=False)

    op.create_table('levy_charges',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('estate_id', sa.Integer(), nullable=False),
    sa.Column('definition_id', sa.Integer(), nullable=False),
    sa.Column('unit_id', sa.Integer(), nullable=False),
    sa.Column('period', sa.String(length=7), nullable=False),
    sa.Column('run', sa.Integer(), nullable=False),
    sa.Column('amount', sa.Numeric(precision=20, scale=6), nullable=False),
    sa.Column('owner_person_id', sa.Integer(), nullable=True),
    sa.Column('transaction_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['definition_id'], ['levy_definitions.id'], name=op.f('fk_levy_charges_definition_id_levy_definitions')),
    sa.ForeignKeyConstraint(['estate_id'], ['estates.id'], name=op.f('fk_levy_charges_estate_id_estates')),
    sa.ForeignKeyConstraint(['owner_person_id'], ['persons.id'], name=op.f('fk_levy_charges_owner_person_id_persons')),
    sa.ForeignKeyConstraint(['transaction_id'], ['ledger_transactions.id'], name=op.f('fk_levy_charges_transaction_id_ledger_transactions')),
    sa.ForeignKeyConstraint(['unit_id'], ['units.id'], name=op.f('fk_levy_charges_unit_id_units')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_levy_charges')),
    sa.UniqueConstraint('definition_id', 'unit_id', 'period', 'run', name=op.f('uq_levy_charges_definition_id_unit_id_period_run'))
    )
    with op.batch_alter_table('levy_charges', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_levy_charges_definition_id'), ['definition_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_levy_charges_estate_id'), ['estate_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_levy_charges_period'), ['period'], unique=False)
        batch_op.create_index(batch_op.f('ix_levy_charges_unit_id'), ['unit_id'], unique=False)


def downgrade():
    op.drop_table('levy_charges')
    op.drop_table('levy_definitions')
