"""Ingest robustness (issue 11, items 3-4): raw dead-letter payloads, boundary meters, uplink ids.

- dead_letters.raw_payload (bytes): the message exactly as received, whatever it holds (a NUL
  byte cannot go into a text column); `payload` stays a readable, NUL-free copy.
- meters.reports_on_boundaries: whether the meter stamps readings on its interval's
  boundaries (:00 and :30 for half-hourly, the PowerCMS-style HTTP meters). Existing meters keep
  the rule, except ChirpStack (LoRaWAN) meters, whose devices send on free-running timers.
- readings.uplink_id: ChirpStack's deduplicationId, unique per meter (a replayed uplink).

Revision ID: 0014
Revises: 0012
"""
from alembic import op
import sqlalchemy as sa


revision = '0014'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('dead_letters', schema=None) as batch_op:
        batch_op.add_column(sa.Column('raw_payload', sa.LargeBinary(), nullable=True))
    with op.batch_alter_table('meters', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reports_on_boundaries', sa.Boolean(), nullable=False,
                                      server_default=sa.true()))
    op.execute("UPDATE meters SET reports_on_boundaries = false WHERE protocol = 'chirpstack'")
    with op.batch_alter_table('readings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('uplink_id', sa.String(length=64), nullable=True))
        batch_op.create_unique_constraint('uq_readings_meter_id_uplink_id', ['meter_id', 'uplink_id'])


def downgrade():
    with op.batch_alter_table('readings', schema=None) as batch_op:
        batch_op.drop_constraint('uq_readings_meter_id_uplink_id', type_='unique')
        batch_op.drop_column('uplink_id')
    with op.batch_alter_table('meters', schema=None) as batch_op:
        batch_op.drop_column('reports_on_boundaries')
    with op.batch_alter_table('dead_letters', schema=None) as batch_op:
        batch_op.drop_column('raw_payload')
