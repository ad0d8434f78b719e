"""Corrections (issue 14 item 7): staff reversals and reassignments with a reason and a
second approval above an estate threshold, the SparkMeter reversal outcome, and case notes
per unit and person.

Revision ID: 0023
Revises: 0022
"""
from alembic import op
import sqlalchemy as sa


revision = '0023'
down_revision = '0022'
branch_labels = None
depends_on = None

TX_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade():
    op.create_table('corrections',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('estate_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('transaction_id', TX_ID, nullable=False),
    sa.Column('payment_id', sa.Integer(), nullable=True),
    sa.Column('target_unit_id', sa.Integer(), nullable=True),
    sa.Column('target_utility', sa.String(length=16), nullable=True),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('amount', sa.Numeric(20, 6), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('requested_by_user_id', sa.Integer(), nullable=False),
    sa.Column('requested_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('decided_by_user_id', sa.Integer(), nullable=True),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('decision_note', sa.String(length=500), nullable=True),
    sa.Column('reversal_transaction_id', TX_ID, nullable=True),
    sa.Column('new_payment_id', sa.Integer(), nullable=True),
    sa.Column('vendor_status', sa.String(length=8), nullable=True),
    sa.Column('vendor_result', sa.String(length=300), nullable=True),
    sa.ForeignKeyConstraint(['decided_by_user_id'], ['users.id'], name=op.f('fk_corrections_decided_by_user_id_users')),
    sa.ForeignKeyConstraint(['estate_id'], ['estates.id'], name=op.f('fk_corrections_estate_id_estates')),
    sa.ForeignKeyConstraint(['new_payment_id'], ['payments.id'], name=op.f('fk_corrections_new_payment_id_payments')),
    sa.ForeignKeyConstraint(['payment_id'], ['payments.id'], name=op.f('fk_corrections_payment_id_payments')),
    sa.ForeignKeyConstraint(['requested_by_user_id'], ['users.id'], name=op.f('fk_corrections_requested_by_user_id_users')),
    sa.ForeignKeyConstraint(['reversal_transaction_id'], ['ledger_transactions.id'], name=op.f('fk_corrections_reversal_transaction_id_ledger_transactions')),
    sa.ForeignKeyConstraint(['target_unit_id'], ['units.id'], name=op.f('fk_corrections_target_unit_id_units')),
    sa.ForeignKeyConstraint(['transaction_id'], ['ledger_transactions.id'], name=op.f('fk_corrections_transaction_id_ledger_transactions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_corrections'))
    )
    with op.batch_alter_table('corrections', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_corrections_estate_id'), ['estate_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_corrections_status'), ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_corrections_transaction_id'), ['transaction_id'], unique=False)

    op.create_table('case_notes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('estate_id', sa.Integer(), nullable=False),
    sa.Column('unit_id', sa.Integer(), nullable=True),
    sa.Column('person_id', sa.Integer(), nullable=True),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('author_user_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('(unit_id IS NULL) <> (person_id IS NULL)', name=op.f('ck_case_notes_one_subject')),
    sa.ForeignKeyConstraint(['author_user_id'], ['users.id'], name=op.f('fk_case_notes_author_user_id_users')),
    sa.ForeignKeyConstraint(['estate_id'], ['estates.id'], name=op.f('fk_case_notes_estate_id_estates')),
    sa.ForeignKeyConstraint(['person_id'], ['persons.id'], name=op.f('fk_case_notes_person_id_persons')),
    sa.ForeignKeyConstraint(['unit_id'], ['units.id'], name=op.f('fk_case_notes_unit_id_units')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_case_notes'))
    )
    with op.batch_alter_table('case_notes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_case_notes_estate_id'), ['estate_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_case_notes_person_id'), ['person_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_case_notes_unit_id'), ['unit_id'], unique=False)

    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reassigned_from_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_payments_reassigned_from_id_payments'), 'payments', ['reassigned_from_id'], ['id'])


def downgrade():
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_payments_reassigned_from_id_payments'), type_='foreignkey')
        batch_op.drop_column('reassigned_from_id')
    with op.batch_alter_table('case_notes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_case_notes_unit_id'))
        batch_op.drop_index(batch_op.f('ix_case_notes_person_id'))
        batch_op.drop_index(batch_op.f('ix_case_notes_estate_id'))
    op.drop_table('case_notes')
    with op.batch_alter_table('corrections', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_corrections_transaction_id'))
        batch_op.drop_index(batch_op.f('ix_corrections_status'))
        batch_op.drop_index(batch_op.f('ix_corrections_estate_id'))
    op.drop_table('corrections')
