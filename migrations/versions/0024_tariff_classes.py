"""Tariff classes (issue 14 item 8, C5): an estate's price lists, one per unit; tariff versions
per class. Every existing estate gets its default class "standard" and every existing version
joins it; units keep NULL (= the default class).

Revision ID: 0024
Revises: 0023
"""
from datetime import UTC, datetime

from alembic import op
import sqlalchemy as sa


revision = '0024'
down_revision = '0023'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'tariff_classes',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('estate_id', sa.Integer(), nullable=False),
        sa.Column('code', sa.String(length=32), nullable=False),
        sa.Column('name', sa.String(length=100), nullable=False),
        sa.Column('is_default', sa.Boolean(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['estate_id'], ['estates.id'], name=op.f('fk_tariff_classes_estate_id_estates')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_tariff_classes')),
        sa.UniqueConstraint('estate_id', 'code', name=op.f('uq_tariff_classes_estate_id_code')),
    )
    with op.batch_alter_table('tariff_classes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_tariff_classes_estate_id'), ['estate_id'], unique=False)
        batch_op.create_index('ix_tariff_classes_one_default', ['estate_id'], unique=True,
                              postgresql_where=sa.text('is_default'), sqlite_where=sa.text('is_default'))

    with op.batch_alter_table('units', schema=None) as batch_op:
        batch_op.add_column(sa.Column('tariff_class_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_units_tariff_class_id'), ['tariff_class_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_units_tariff_class_id_tariff_classes'), 'tariff_classes',
                                    ['tariff_class_id'], ['id'])

    with op.batch_alter_table('tariff_versions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('tariff_class_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_tariff_versions_tariff_class_id_tariff_classes'),
                                    'tariff_classes', ['tariff_class_id'], ['id'])
        batch_op.drop_constraint('uq_tariff_versions_estate_id_utility_effective_from', type_='unique')
        batch_op.create_unique_constraint('uq_tariff_versions_tariff_class_id_utility_effective_from',
                                          ['tariff_class_id', 'utility', 'effective_from'])
        batch_op.create_index('ix_tariff_versions_default_class_day', ['estate_id', 'utility', 'effective_from'],
                              unique=True, postgresql_where=sa.text('tariff_class_id IS NULL'),
                              sqlite_where=sa.text('tariff_class_id IS NULL'))

    # One default class per existing estate; every existing version belongs to it.
    bind = op.get_bind()
    estates = sa.table('estates', sa.column('id', sa.Integer()))
    classes = sa.table('tariff_classes', sa.column('estate_id', sa.Integer()), sa.column('code', sa.String()),
                       sa.column('name', sa.String()), sa.column('is_default', sa.Boolean()),
                       sa.column('created_at', sa.DateTime(timezone=True)))
    now = datetime.now(UTC)
    now = now.replace(tzinfo=None) if bind.dialect.name == 'sqlite' else now
    rows = [{'estate_id': estate_id, 'code': 'standard', 'name': 'Standard', 'is_default': True, 'created_at': now}
            for (estate_id,) in bind.execute(sa.select(estates.c.id))]
    if rows:
        op.bulk_insert(classes, rows)
    op.execute("UPDATE tariff_versions SET tariff_class_id = (SELECT tariff_classes.id FROM tariff_classes "
               "WHERE tariff_classes.estate_id = tariff_versions.estate_id AND tariff_classes.is_default)")


def downgrade():
    with op.batch_alter_table('tariff_versions', schema=None) as batch_op:
        batch_op.drop_index('ix_tariff_versions_default_class_day')
        batch_op.drop_constraint('uq_tariff_versions_tariff_class_id_utility_effective_from', type_='unique')
        batch_op.create_unique_constraint('uq_tariff_versions_estate_id_utility_effective_from',
                                          ['estate_id', 'utility', 'effective_from'])
        batch_op.drop_constraint(batch_op.f('fk_tariff_versions_tariff_class_id_tariff_classes'), type_='foreignkey')
        batch_op.drop_column('tariff_class_id')
    with op.batch_alter_table('units', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_units_tariff_class_id_tariff_classes'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_units_tariff_class_id'))
        batch_op.drop_column('tariff_class_id')
    with op.batch_alter_table('tariff_classes', schema=None) as batch_op:
        batch_op.drop_index('ix_tariff_classes_one_default')
        batch_op.drop_index(batch_op.f('ix_tariff_classes_estate_id'))
    op.drop_table('tariff_classes')
