"""Historical backfills of the Koios/ThunderCloud imports and report subscriptions (issue 22, items 4 and 8).

Revision ID: 0043
Revises: 0031
"""
from alembic import op
import sqlalchemy as sa


revision = '0043'
down_revision = '0040'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('source_backfills',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('estate_id', sa.Integer(), nullable=False),
    sa.Column('first_day', sa.Date(), nullable=False),
    sa.Column('last_day', sa.Date(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('last_completed_day', sa.Date(), nullable=True),
    sa.Column('days_done', sa.Integer(), nullable=False),
    sa.Column('accepted', sa.Integer(), nullable=False),
    sa.Column('duplicates', sa.Integer(), nullable=False),
    sa.Column('skipped', sa.Integer(), nullable=False),
    sa.Column('summary', sa.Text(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('job_run_id', sa.Integer(), nullable=True),
    sa.Column('created_by_user_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('stop_requested_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['estate_id'], ['estates.id'], name=op.f('fk_source_backfills_estate_id_estates')),
    sa.ForeignKeyConstraint(['job_run_id'], ['job_runs.id'], name=op.f('fk_source_backfills_job_run_id_job_runs')),
    sa.ForeignKeyConstraint(['created_by_user_id'], ['users.id'],
                            name=op.f('fk_source_backfills_created_by_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_source_backfills'))
    )
    with op.batch_alter_table('source_backfills', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_source_backfills_estate_id'), ['estate_id'], unique=False)

    op.create_table('report_subscriptions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('endpoint', sa.String(length=128), nullable=False),
    sa.Column('args', sa.JSON(), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('frequency', sa.String(length=8), nullable=False),
    sa.Column('file_format', sa.String(length=4), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('cancelled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('disabled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('disabled_reason', sa.Text(), nullable=True),
    sa.Column('last_sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_report_subscriptions_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_report_subscriptions'))
    )
    with op.batch_alter_table('report_subscriptions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_report_subscriptions_user_id'), ['user_id'], unique=False)

    op.create_table('report_deliveries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('subscription_id', sa.Integer(), nullable=False),
    sa.Column('period', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=8), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('to_address', sa.String(length=254), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['subscription_id'], ['report_subscriptions.id'],
                            name=op.f('fk_report_deliveries_subscription_id_report_subscriptions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_report_deliveries')),
    sa.UniqueConstraint('subscription_id', 'period', name=op.f('uq_report_deliveries_subscription_id_period'))
    )
    with op.batch_alter_table('report_deliveries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_report_deliveries_subscription_id'), ['subscription_id'], unique=False)


def downgrade():
    op.drop_table('report_deliveries')
    op.drop_table('report_subscriptions')
    op.drop_table('source_backfills')
