"""A person's language (X8): pages, emails and SMS in English, French or Sesotho.

NULL means the estate's default language (setting `language`), then the browser's.

Revision ID: 0037
Revises: 0026
"""
from alembic import op
import sqlalchemy as sa


revision = '0037'
down_revision = '0026'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('persons', schema=None) as batch_op:
        batch_op.add_column(sa.Column('language', sa.String(length=8), nullable=True))


def downgrade():
    with op.batch_alter_table('persons', schema=None) as batch_op:
        batch_op.drop_column('language')
