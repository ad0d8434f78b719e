"""Meter replacement (issue 14): a replaced meter is detached (kept on its unit for history)
and names the meter that replaced it, so billing continues on the new one.

Revision ID: 0020
Revises: 0019
"""
from alembic import op
import sqlalchemy as sa


revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('meters', schema=None) as batch_op:
        batch_op.add_column(sa.Column('detached_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('replaced_by_meter_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_meters_replaced_by_meter_id'), ['replaced_by_meter_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_meters_replaced_by_meter_id_meters'), 'meters',
                                    ['replaced_by_meter_id'], ['id'])


def downgrade():
    with op.batch_alter_table('meters', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_meters_replaced_by_meter_id_meters'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_meters_replaced_by_meter_id'))
        batch_op.drop_column('replaced_by_meter_id')
        batch_op.drop_column('detached_at')
