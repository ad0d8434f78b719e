"""Metering (issue 3): tariff notices, VEE, API keys.

Tariff versions gain a solar (feed-in) rate and the schedule's bookkeeping (who created it,
when its notice went out, when it was switched on); meters gain a register size and a
net-metering flag; alerts can be acknowledged; API keys show a prefix and their last use.

Revision ID: 0009
Revises: 0008
"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('tariff_versions') as batch:
        batch.add_column(sa.Column('solar_rate', sa.Numeric(20, 6), nullable=True))
        batch.add_column(sa.Column('created_by_user_id', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('notice_sent_at', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('activated_at', sa.DateTime(timezone=True), nullable=True))
        batch.create_foreign_key('fk_tariff_versions_created_by_user_id_users', 'users',
                                 ['created_by_user_id'], ['id'])
    with op.batch_alter_table('meters') as batch:
        batch.add_column(sa.Column('register_digits', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('bidirectional', sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
    with op.batch_alter_table('meter_alerts') as batch:
        batch.add_column(sa.Column('acknowledged_at', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('acknowledged_by_user_id', sa.Integer(), nullable=True))
        batch.create_foreign_key('fk_meter_alerts_acknowledged_by_user_id_users', 'users',
                                 ['acknowledged_by_user_id'], ['id'])
    with op.batch_alter_table('ingest_api_keys') as batch:
        batch.add_column(sa.Column('prefix', sa.String(16), nullable=False, server_default=''))
        batch.add_column(sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True))


def downgrade():
    with op.batch_alter_table('ingest_api_keys') as batch:
        batch.drop_column('last_used_at')
        batch.drop_column('prefix')
    with op.batch_alter_table('meter_alerts') as batch:
        batch.drop_constraint('fk_meter_alerts_acknowledged_by_user_id_users', type_='foreignkey')
        batch.drop_column('acknowledged_by_user_id')
        batch.drop_column('acknowledged_at')
    with op.batch_alter_table('meters') as batch:
        batch.drop_column('bidirectional')
        batch.drop_column('register_digits')
    with op.batch_alter_table('tariff_versions') as batch:
        batch.drop_constraint('fk_tariff_versions_created_by_user_id_users', type_='foreignkey')
        batch.drop_column('activated_at')
        batch.drop_column('notice_sent_at')
        batch.drop_column('created_by_user_id')
        batch.drop_column('solar_rate')
