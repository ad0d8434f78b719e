"""ThunderCloud payments matched to units (issue 7): thundercloud_payments.unit_id.

Nullable: a payment whose meter serial is not (yet) a SparkMeter meter on a unit stays NULL
and is matched again on every import (app.sources.thundercloud.match_payments).

Revision ID: 0012
Revises: 0011
"""
from alembic import op
import sqlalchemy as sa


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('thundercloud_payments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('unit_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key('fk_thundercloud_payments_unit_id_units', 'units', ['unit_id'], ['id'])
        batch_op.create_index('ix_thundercloud_payments_unit_id', ['unit_id'], unique=False)


def downgrade():
    with op.batch_alter_table('thundercloud_payments', schema=None) as batch_op:
        batch_op.drop_index('ix_thundercloud_payments_unit_id')
        batch_op.drop_constraint('fk_thundercloud_payments_unit_id_units', type_='foreignkey')
        batch_op.drop_column('unit_id')
