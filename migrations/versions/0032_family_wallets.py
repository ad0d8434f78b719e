"""Family wallets (F1-F4): wallet grants at view/topup/manage, wallet groups, spend limits, alerts sent.

Existing role grants "family" on a unit become `view` wallet grants and are removed: the
scope check reads wallet grants from now on.

Revision ID: 0032
Revises: 0036
"""
from alembic import op
import sqlalchemy as sa


revision = '0032'
down_revision = '0036'
branch_labels = None
depends_on = None

AMOUNT = sa.Numeric(precision=20, scale=6)


def upgrade():
    op.create_table('wallet_grants',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('unit_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('level', sa.String(length=8), nullable=False),
    sa.Column('topup_daily_cap', AMOUNT, nullable=True),
    sa.Column('topup_monthly_cap', AMOUNT, nullable=True),
    sa.Column('alerts_enabled', sa.Boolean(), nullable=False),
    sa.Column('low_threshold', AMOUNT, nullable=True),
    sa.Column('alert_channels', sa.JSON(), nullable=False),
    sa.Column('granted_by_user_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_by_user_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['granted_by_user_id'], ['users.id'], name=op.f('fk_wallet_grants_granted_by_user_id_users')),
    sa.ForeignKeyConstraint(['revoked_by_user_id'], ['users.id'], name=op.f('fk_wallet_grants_revoked_by_user_id_users')),
    sa.ForeignKeyConstraint(['unit_id'], ['units.id'], name=op.f('fk_wallet_grants_unit_id_units')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_wallet_grants_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_wallet_grants'))
    )
    with op.batch_alter_table('wallet_grants', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_wallet_grants_unit_id'), ['unit_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_wallet_grants_user_id'), ['user_id'], unique=False)
        batch_op.create_index('uq_wallet_grants_active', ['unit_id', 'user_id'], unique=True,
                              postgresql_where=sa.text('revoked_at IS NULL'), sqlite_where=sa.text('revoked_at IS NULL'))

    op.create_table('wallet_groups',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('owner_user_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['owner_user_id'], ['users.id'], name=op.f('fk_wallet_groups_owner_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_wallet_groups'))
    )
    with op.batch_alter_table('wallet_groups', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_wallet_groups_owner_user_id'), ['owner_user_id'], unique=False)

    op.create_table('wallet_group_members',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('group_id', sa.Integer(), nullable=False),
    sa.Column('unit_id', sa.Integer(), nullable=False),
    sa.Column('label', sa.String(length=100), nullable=False),
    sa.ForeignKeyConstraint(['group_id'], ['wallet_groups.id'], name=op.f('fk_wallet_group_members_group_id_wallet_groups'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['unit_id'], ['units.id'], name=op.f('fk_wallet_group_members_unit_id_units')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_wallet_group_members')),
    sa.UniqueConstraint('group_id', 'unit_id', name=op.f('uq_wallet_group_members_group_id_unit_id'))
    )
    with op.batch_alter_table('wallet_group_members', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_wallet_group_members_group_id'), ['group_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_wallet_group_members_unit_id'), ['unit_id'], unique=False)

    op.create_table('spend_limits',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('unit_id', sa.Integer(), nullable=False),
    sa.Column('utility', sa.String(length=16), nullable=False),
    sa.Column('daily', AMOUNT, nullable=True),
    sa.Column('monthly', AMOUNT, nullable=True),
    sa.Column('updated_by_user_id', sa.Integer(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['unit_id'], ['units.id'], name=op.f('fk_spend_limits_unit_id_units')),
    sa.ForeignKeyConstraint(['updated_by_user_id'], ['users.id'], name=op.f('fk_spend_limits_updated_by_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_spend_limits')),
    sa.UniqueConstraint('unit_id', 'utility', name=op.f('uq_spend_limits_unit_id_utility'))
    )
    with op.batch_alter_table('spend_limits', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_spend_limits_unit_id'), ['unit_id'], unique=False)

    op.create_table('family_alerts_sent',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('grant_id', sa.Integer(), nullable=False),
    sa.Column('utility', sa.String(length=16), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('period_key', sa.String(length=16), nullable=False),
    sa.Column('detail', sa.JSON(), nullable=True),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['grant_id'], ['wallet_grants.id'], name=op.f('fk_family_alerts_sent_grant_id_wallet_grants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_family_alerts_sent')),
    sa.UniqueConstraint('grant_id', 'utility', 'kind', 'period_key', name=op.f('uq_family_alerts_sent_grant_id_utility_kind_period_key'))
    )
    with op.batch_alter_table('family_alerts_sent', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_family_alerts_sent_grant_id'), ['grant_id'], unique=False)

    # Today's family role grants on a unit become view grants (one per user and unit).
    op.execute(sa.text(
        "INSERT INTO wallet_grants (unit_id, user_id, level, alerts_enabled, alert_channels, created_at) "
        "SELECT unit_id, user_id, 'view', false, '[\"in_app\", \"email\"]', MIN(created_at) FROM role_grants "
        "WHERE role = 'family' AND unit_id IS NOT NULL GROUP BY unit_id, user_id"))
    op.execute(sa.text("DELETE FROM role_grants WHERE role = 'family' AND unit_id IS NOT NULL"))


def downgrade():
    op.execute(sa.text(
        "INSERT INTO role_grants (user_id, role, unit_id, created_at) "
        "SELECT user_id, 'family', unit_id, created_at FROM wallet_grants WHERE revoked_at IS NULL"))
    op.drop_table('family_alerts_sent')
    op.drop_table('spend_limits')
    op.drop_table('wallet_group_members')
    op.drop_table('wallet_groups')
    op.drop_table('wallet_grants')
