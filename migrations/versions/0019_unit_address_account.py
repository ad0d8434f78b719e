"""Units gain an address, an optional GPS position and an account number (issue 14).

The account number is what payers quote in an SMS or EFT reference, so it is unique across
all estates; it is NULL for units made before account numbers existed until they are given
one (the units page's "Give account numbers" button, app/estates/account_numbers.py).
`account_sequence` is the pattern's {seq}, unique within the estate, so the sequence continues.

Revision ID: 0019
Revises: 0017
"""
from alembic import op
import sqlalchemy as sa


revision = '0019'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('units', schema=None) as batch_op:
        batch_op.add_column(sa.Column('address', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('latitude', sa.Numeric(precision=9, scale=6), nullable=True))
        batch_op.add_column(sa.Column('longitude', sa.Numeric(precision=9, scale=6), nullable=True))
        batch_op.add_column(sa.Column('account_number', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('account_sequence', sa.Integer(), nullable=True))
        batch_op.create_unique_constraint(batch_op.f('uq_units_account_number'), ['account_number'])
        batch_op.create_unique_constraint(batch_op.f('uq_units_estate_id_account_sequence'),
                                          ['estate_id', 'account_sequence'])


def downgrade():
    with op.batch_alter_table('units', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_units_estate_id_account_sequence'), type_='unique')
        batch_op.drop_constraint(batch_op.f('uq_units_account_number'), type_='unique')
        batch_op.drop_column('account_sequence')
        batch_op.drop_column('account_number')
        batch_op.drop_column('longitude')
        batch_op.drop_column('latitude')
        batch_op.drop_column('address')
