"""Statements (issue 6): archived statements and deliveries.

Revision ID: 0005
Revises: 0004
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('statements',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('estate_id', sa.Integer(), nullable=False),
    sa.Column('unit_id', sa.Integer(), nullable=False),
    sa.Column('period', sa.String(length=7), nullable=False),
    sa.Column('figures', sa.JSON(), nullable=False),
    sa.Column('figures_sha256', sa.String(length=64), nullable=False),
    sa.Column('pdf', sa.LargeBinary(), nullable=False),
    sa.Column('pdf_sha256', sa.String(length=64), nullable=False),
    sa.Column('discrepancy', sa.Text(), nullable=True),
    sa.Column('job_run_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['estate_id'], ['estates.id'], name=op.f('fk_statements_estate_id_estates')),
    sa.ForeignKeyConstraint(['job_run_id'], ['job_runs.id'], name=op.f('fk_statements_job_run_id_job_runs')),
    sa.ForeignKeyConstraint(['unit_id'], ['units.id'], name=op.f('fk_statements_unit_id_units')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_statements')),
    sa.UniqueConstraint('unit_id', 'period', name=op.f('uq_statements_unit_id_period'))
    )
    with op.batch_alter_table('statements', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_statements_estate_id'), ['estate_id'], unique=False)

    op.create_table('statement_deliveries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('statement_id', sa.Integer(), nullable=False),
    sa.Column('person_id', sa.Integer(), nullable=True),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('to_address', sa.String(length=254), nullable=False),
    sa.Column('status', sa.String(length=8), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['person_id'], ['persons.id'], name=op.f('fk_statement_deliveries_person_id_persons')),
    sa.ForeignKeyConstraint(['statement_id'], ['statements.id'], name=op.f('fk_statement_deliveries_statement_id_statements')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_statement_deliveries')),
    sa.UniqueConstraint('statement_id', 'to_address', name=op.f('uq_statement_deliveries_statement_id_to_address'))
    )
    with op.batch_alter_table('statement_deliveries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_statement_deliveries_statement_id'), ['statement_id'], unique=False)


def downgrade():
    with op.batch_alter_table('statement_deliveries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_statement_deliveries_statement_id'))
    op.drop_table('statement_deliveries')
    with op.batch_alter_table('statements', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_statements_estate_id'))
    op.drop_table('statements')
