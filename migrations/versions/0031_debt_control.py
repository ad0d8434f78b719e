"""Arrears and debt (issue 16, A4): per-pocket credit limits, arrears episodes and the ladder's
steps, payment plans, escalation tasks and write-offs to bad debt.

Revision ID: 0031
Revises: 0035
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0031'
down_revision = '0035'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('arrears_episodes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('estate_id', sa.Integer(), nullable=False),
    sa.Column('unit_id', sa.Integer(), nullable=False),
    sa.Column('since', sa.Date(), nullable=False),
    sa.Column('opened_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('steps_done', sa.String(length=200), nullable=False),
    sa.Column('restricted', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['estate_id'], ['estates.id'], name=op.f('fk_arrears_episodes_estate_id_estates')),
    sa.ForeignKeyConstraint(['unit_id'], ['units.id'], name=op.f('fk_arrears_episodes_unit_id_units')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_arrears_episodes'))
    )
    with op.batch_alter_table('arrears_episodes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_arrears_episodes_estate_id'), ['estate_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_arrears_episodes_unit_id'), ['unit_id'], unique=False)

    op.create_table('payment_plans',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('estate_id', sa.Integer(), nullable=False),
    sa.Column('unit_id', sa.Integer(), nullable=False),
    sa.Column('instalment', sa.Numeric(precision=20, scale=6), nullable=False),
    sa.Column('frequency', sa.String(length=8), nullable=False),
    sa.Column('starts_on', sa.Date(), nullable=False),
    sa.Column('status', sa.String(length=8), nullable=False),
    sa.Column('note', sa.String(length=200), nullable=False),
    sa.Column('created_by_user_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['created_by_user_id'], ['users.id'], name=op.f('fk_payment_plans_created_by_user_id_users')),
    sa.ForeignKeyConstraint(['estate_id'], ['estates.id'], name=op.f('fk_payment_plans_estate_id_estates')),
    sa.ForeignKeyConstraint(['unit_id'], ['units.id'], name=op.f('fk_payment_plans_unit_id_units')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payment_plans'))
    )
    with op.batch_alter_table('payment_plans', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_payment_plans_estate_id'), ['estate_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_payment_plans_unit_id'), ['unit_id'], unique=False)

    op.create_table('arrears_tasks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('estate_id', sa.Integer(), nullable=False),
    sa.Column('unit_id', sa.Integer(), nullable=False),
    sa.Column('episode_id', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('status', sa.String(length=8), nullable=False),
    sa.Column('assigned_to_user_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('closed_by_user_id', sa.Integer(), nullable=True),
    sa.Column('close_note', sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(['assigned_to_user_id'], ['users.id'], name=op.f('fk_arrears_tasks_assigned_to_user_id_users')),
    sa.ForeignKeyConstraint(['closed_by_user_id'], ['users.id'], name=op.f('fk_arrears_tasks_closed_by_user_id_users')),
    sa.ForeignKeyConstraint(['episode_id'], ['arrears_episodes.id'], name=op.f('fk_arrears_tasks_episode_id_arrears_episodes')),
    sa.ForeignKeyConstraint(['estate_id'], ['estates.id'], name=op.f('fk_arrears_tasks_estate_id_estates')),
    sa.ForeignKeyConstraint(['unit_id'], ['units.id'], name=op.f('fk_arrears_tasks_unit_id_units')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_arrears_tasks')),
    sa.UniqueConstraint('episode_id', name=op.f('uq_arrears_tasks_episode_id'))
    )
    with op.batch_alter_table('arrears_tasks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_arrears_tasks_estate_id'), ['estate_id'], unique=False)

    op.create_table('pocket_credit_limits',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('amount', sa.Numeric(precision=20, scale=6), nullable=False),
    sa.Column('set_by_user_id', sa.Integer(), nullable=True),
    sa.Column('set_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_pocket_credit_limits_account_id_accounts')),
    sa.ForeignKeyConstraint(['set_by_user_id'], ['users.id'], name=op.f('fk_pocket_credit_limits_set_by_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pocket_credit_limits')),
    sa.UniqueConstraint('account_id', name=op.f('uq_pocket_credit_limits_account_id'))
    )
    op.create_table('write_offs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('estate_id', sa.Integer(), nullable=False),
    sa.Column('unit_id', sa.Integer(), nullable=True),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('record_id', sa.Integer(), nullable=True),
    sa.Column('amount', sa.Numeric(precision=20, scale=6), nullable=False),
    sa.Column('reason', sa.String(length=300), nullable=False),
    sa.Column('status', sa.String(length=8), nullable=False),
    sa.Column('requested_by_user_id', sa.Integer(), nullable=False),
    sa.Column('requested_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('decided_by_user_id', sa.Integer(), nullable=True),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('transaction_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_write_offs_account_id_accounts')),
    sa.ForeignKeyConstraint(['decided_by_user_id'], ['users.id'], name=op.f('fk_write_offs_decided_by_user_id_users')),
    sa.ForeignKeyConstraint(['estate_id'], ['estates.id'], name=op.f('fk_write_offs_estate_id_estates')),
    sa.ForeignKeyConstraint(['record_id'], ['arrears_records.id'], name=op.f('fk_write_offs_record_id_arrears_records')),
    sa.ForeignKeyConstraint(['requested_by_user_id'], ['users.id'], name=op.f('fk_write_offs_requested_by_user_id_users')),
    sa.ForeignKeyConstraint(['transaction_id'], ['ledger_transactions.id'], name=op.f('fk_write_offs_transaction_id_ledger_transactions')),
    sa.ForeignKeyConstraint(['unit_id'], ['units.id'], name=op.f('fk_write_offs_unit_id_units')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_write_offs'))
    )
    with op.batch_alter_table('write_offs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_write_offs_estate_id'), ['estate_id'], unique=False)



def downgrade():
    with op.batch_alter_table('write_offs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_write_offs_estate_id'))

    op.drop_table('write_offs')
    op.drop_table('pocket_credit_limits')
    with op.batch_alter_table('arrears_tasks', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_arrears_tasks_estate_id'))

    op.drop_table('arrears_tasks')
    with op.batch_alter_table('payment_plans', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_payment_plans_unit_id'))
        batch_op.drop_index(batch_op.f('ix_payment_plans_estate_id'))

    op.drop_table('payment_plans')
    with op.batch_alter_table('arrears_episodes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_arrears_episodes_unit_id'))
        batch_op.drop_index(batch_op.f('ix_arrears_episodes_estate_id'))

    op.drop_table('arrears_episodes')
