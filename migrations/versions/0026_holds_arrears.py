"""Relay holds and arrears records: the shared pieces of the arrears, family and utility issues.

- relay_holds: a deliberate cut of a meter (arrears suspension, spend limit, demand, staff);
  credit control restores supply only when none is active (one active hold per meter and kind).
- arrears_records: a debt a person owes outside a pocket, its amount held in a ledger account
  of its own (kind "arrears"), so what is outstanding is the sum of postings.

Revision ID: 0026
Revises: 0025
"""
from alembic import op
import sqlalchemy as sa


revision = '0026'
down_revision = '0025'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('relay_holds',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('meter_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.String(length=200), nullable=False),
    sa.Column('set_by_user_id', sa.Integer(), nullable=True),
    sa.Column('set_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('released_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('released_by_user_id', sa.Integer(), nullable=True),
    sa.Column('release_reason', sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(['meter_id'], ['meters.id'], name=op.f('fk_relay_holds_meter_id_meters')),
    sa.ForeignKeyConstraint(['released_by_user_id'], ['users.id'], name=op.f('fk_relay_holds_released_by_user_id_users')),
    sa.ForeignKeyConstraint(['set_by_user_id'], ['users.id'], name=op.f('fk_relay_holds_set_by_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_relay_holds'))
    )
    with op.batch_alter_table('relay_holds', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_relay_holds_meter_id'), ['meter_id'], unique=False)
        batch_op.create_index('uq_relay_holds_active', ['meter_id', 'kind'], unique=True, postgresql_where=sa.text('released_at IS NULL'), sqlite_where=sa.text('released_at IS NULL'))

    op.create_table('arrears_records',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('estate_id', sa.Integer(), nullable=False),
    sa.Column('person_id', sa.Integer(), nullable=False),
    sa.Column('unit_id', sa.Integer(), nullable=True),
    sa.Column('utility', sa.String(length=16), nullable=True),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('amount', sa.Numeric(precision=20, scale=6), nullable=False),
    sa.Column('reason', sa.String(length=300), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('source_ref', sa.String(length=100), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('opened_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_by_user_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_arrears_records_account_id_accounts')),
    sa.ForeignKeyConstraint(['created_by_user_id'], ['users.id'], name=op.f('fk_arrears_records_created_by_user_id_users')),
    sa.ForeignKeyConstraint(['estate_id'], ['estates.id'], name=op.f('fk_arrears_records_estate_id_estates')),
    sa.ForeignKeyConstraint(['person_id'], ['persons.id'], name=op.f('fk_arrears_records_person_id_persons')),
    sa.ForeignKeyConstraint(['unit_id'], ['units.id'], name=op.f('fk_arrears_records_unit_id_units')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_arrears_records')),
    sa.UniqueConstraint('account_id', name=op.f('uq_arrears_records_account_id')),
    sa.UniqueConstraint('estate_id', 'source', 'source_ref', name=op.f('uq_arrears_records_estate_id_source_source_ref'))
    )
    with op.batch_alter_table('arrears_records', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_arrears_records_estate_id'), ['estate_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_arrears_records_person_id'), ['person_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_arrears_records_unit_id'), ['unit_id'], unique=False)



def downgrade():
    with op.batch_alter_table('arrears_records', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_arrears_records_unit_id'))
        batch_op.drop_index(batch_op.f('ix_arrears_records_person_id'))
        batch_op.drop_index(batch_op.f('ix_arrears_records_estate_id'))

    op.drop_table('arrears_records')
    with op.batch_alter_table('relay_holds', schema=None) as batch_op:
        batch_op.drop_index('uq_relay_holds_active', postgresql_where=sa.text('released_at IS NULL'), sqlite_where=sa.text('released_at IS NULL'))
        batch_op.drop_index(batch_op.f('ix_relay_holds_meter_id'))

    op.drop_table('relay_holds')
