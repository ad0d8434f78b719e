"""Users' session version (issue 11, item 8): logout ends every session server-side.

Each session stores "<user id>:<session_version>"; logout bumps the version, so a copy of
an old session cookie no longer signs anyone in. Existing sessions (no version) end once.

Revision ID: 0015
Revises: 0014
"""
from alembic import op
import sqlalchemy as sa


revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('session_version', sa.Integer(), nullable=False, server_default='0'))


def downgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('session_version')
