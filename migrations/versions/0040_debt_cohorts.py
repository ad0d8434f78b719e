"""Debt cohorts (issue 16, A5): each fiscal year's top debtors per estate and their monthly snapshots.

Revision ID: 0040
Revises: 0031
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0040'
down_revision = '0042'
branch_labels = None
depends_on = None

MONEY = sa.Numeric(precision=20, scale=6)


def upgrade():
    op.create_table('debt_cohorts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('estate_id', sa.Integer(), nullable=False),
    sa.Column('fiscal_year', sa.Integer(), nullable=False),
    sa.Column('taken_on', sa.Date(), nullable=False),
    sa.Column('ranked_by', sa.String(length=8), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('source', sa.String(length=8), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['estate_id'], ['estates.id'], name=op.f('fk_debt_cohorts_estate_id_estates')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_debt_cohorts')),
    sa.UniqueConstraint('fiscal_year', 'estate_id', name=op.f('uq_debt_cohorts_fiscal_year_estate_id'))
    )
    with op.batch_alter_table('debt_cohorts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_debt_cohorts_estate_id'), ['estate_id'], unique=False)

    op.create_table('cohort_members',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('cohort_id', sa.Integer(), nullable=False),
    sa.Column('fiscal_year', sa.Integer(), nullable=False),
    sa.Column('estate_id', sa.Integer(), nullable=False),
    sa.Column('unit_id', sa.Integer(), nullable=False),
    sa.Column('rank', sa.Integer(), nullable=False),
    sa.Column('owed', MONEY, nullable=False),
    sa.Column('usage', MONEY, nullable=False),
    sa.ForeignKeyConstraint(['cohort_id'], ['debt_cohorts.id'], name=op.f('fk_cohort_members_cohort_id_debt_cohorts')),
    sa.ForeignKeyConstraint(['estate_id'], ['estates.id'], name=op.f('fk_cohort_members_estate_id_estates')),
    sa.ForeignKeyConstraint(['unit_id'], ['units.id'], name=op.f('fk_cohort_members_unit_id_units')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_cohort_members')),
    sa.UniqueConstraint('fiscal_year', 'estate_id', 'unit_id', name=op.f('uq_cohort_members_fiscal_year_estate_id_unit_id'))
    )
    with op.batch_alter_table('cohort_members', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_cohort_members_cohort_id'), ['cohort_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_cohort_members_unit_id'), ['unit_id'], unique=False)

    op.create_table('cohort_snapshots',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('cohort_id', sa.Integer(), nullable=False),
    sa.Column('month', sa.Date(), nullable=False),
    sa.Column('estate_id', sa.Integer(), nullable=False),
    sa.Column('unit_id', sa.Integer(), nullable=False),
    sa.Column('balance', MONEY, nullable=False),
    sa.Column('debt', MONEY, nullable=False),
    sa.Column('consumption', MONEY, nullable=False),
    sa.Column('payments', MONEY, nullable=False),
    sa.Column('taken_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['cohort_id'], ['debt_cohorts.id'], name=op.f('fk_cohort_snapshots_cohort_id_debt_cohorts')),
    sa.ForeignKeyConstraint(['estate_id'], ['estates.id'], name=op.f('fk_cohort_snapshots_estate_id_estates')),
    sa.ForeignKeyConstraint(['unit_id'], ['units.id'], name=op.f('fk_cohort_snapshots_unit_id_units')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_cohort_snapshots')),
    sa.UniqueConstraint('month', 'estate_id', 'unit_id', name=op.f('uq_cohort_snapshots_month_estate_id_unit_id'))
    )
    with op.batch_alter_table('cohort_snapshots', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_cohort_snapshots_cohort_id'), ['cohort_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_cohort_snapshots_unit_id'), ['unit_id'], unique=False)


def downgrade():
    for table in ('cohort_snapshots', 'cohort_members'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(batch_op.f(f'ix_{table}_unit_id'))
            batch_op.drop_index(batch_op.f(f'ix_{table}_cohort_id'))
        op.drop_table(table)
    with op.batch_alter_table('debt_cohorts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_debt_cohorts_estate_id'))
    op.drop_table('debt_cohorts')
