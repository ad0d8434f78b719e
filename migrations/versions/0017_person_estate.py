"""The estate whose administration registered a person (issue 14): agents see the people of
their estates, including those not yet given a tenancy or grant.

Revision ID: 0017
Revises: 0016
"""
from alembic import op
import sqlalchemy as sa


revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('persons', schema=None) as batch_op:
        batch_op.add_column(sa.Column('estate_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_persons_estate_id'), ['estate_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_persons_estate_id_estates'), 'estates', ['estate_id'], ['id'])


def downgrade():
    with op.batch_alter_table('persons', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_persons_estate_id_estates'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_persons_estate_id'))
        batch_op.drop_column('estate_id')
