"""Tenant layer (issue 5): budget alert settings.

Revision ID: 0006
Revises: 0005
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('budget_alert_settings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('unit_id', sa.Integer(), nullable=False),
    sa.Column('thresholds', sa.JSON(), nullable=False),
    sa.Column('frequency', sa.String(length=8), nullable=False),
    sa.Column('channels', sa.JSON(), nullable=False),
    sa.Column('high_usage', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['unit_id'], ['units.id'], name=op.f('fk_budget_alert_settings_unit_id_units')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_budget_alert_settings_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_budget_alert_settings')),
    sa.UniqueConstraint('user_id', 'unit_id', name=op.f('uq_budget_alert_settings_user_id_unit_id'))
    )
    with op.batch_alter_table('budget_alert_settings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_budget_alert_settings_unit_id'), ['unit_id'], unique=False)

    op.create_table('budget_alerts_sent',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('setting_id', sa.Integer(), nullable=False),
    sa.Column('utility', sa.String(length=16), nullable=False),
    sa.Column('kind', sa.String(length=12), nullable=False),
    sa.Column('detail', sa.String(length=300), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['setting_id'], ['budget_alert_settings.id'],
                            name=op.f('fk_budget_alerts_sent_setting_id_budget_alert_settings'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_budget_alerts_sent'))
    )
    with op.batch_alter_table('budget_alerts_sent', schema=None) as batch_op:
        batch_op.create_index('ix_budget_alerts_sent_setting_id_utility_kind', ['setting_id', 'utility', 'kind'],
                              unique=False)


def downgrade():
    with op.batch_alter_table('budget_alerts_sent', schema=None) as batch_op:
        batch_op.drop_index('ix_budget_alerts_sent_setting_id_utility_kind')
    op.drop_table('budget_alerts_sent')
    with op.batch_alter_table('budget_alert_settings', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_budget_alert_settings_unit_id'))
    op.drop_table('budget_alert_settings')
