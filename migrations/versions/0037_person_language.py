"""A person's language (X8): pages, emails and SMS in English, French or Sesotho.

NULL means the estate's default language (setting `language`), then the browser's.
An index on notifications(to_address, created_at) for the two-way SMS rate limit.

Revision ID: 0037
Revises: 0027
"""
from alembic import op
import sqlalchemy as sa


revision = '0037'
down_revision = '0027'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('persons', schema=None) as batch_op:
        batch_op.add_column(sa.Column('language', sa.String(length=8), nullable=True))
    # Two-way SMS: replies to one phone in the last hour (the rate limit).
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.create_index('ix_notifications_to_address', ['to_address', 'created_at'], unique=False)


def downgrade():
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.drop_index('ix_notifications_to_address')
    with op.batch_alter_table('persons', schema=None) as batch_op:
        batch_op.drop_column('language')
