"""Metering (issue 3): ingest throughput and ingest worker heartbeats.

Revision ID: 0010
Revises: 0009
"""
from alembic import op
import sqlalchemy as sa


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'ingest_heartbeats',
        sa.Column('client_id', sa.String(100), nullable=False),
        sa.Column('host', sa.String(255), nullable=False),
        sa.Column('pid', sa.Integer(), nullable=False),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('beat_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('stopped_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('connected', sa.Boolean(), nullable=False),
        sa.Column('paused', sa.Boolean(), nullable=False),
        sa.Column('backlog', sa.Integer(), nullable=False),
        sa.Column('last_batch_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('last_batch_size', sa.Integer(), nullable=False),
        sa.Column('readings', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('client_id', name='pk_ingest_heartbeats'),
    )


def downgrade():
    op.drop_table('ingest_heartbeats')
