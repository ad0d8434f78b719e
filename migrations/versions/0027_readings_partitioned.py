"""Readings partitioned by month (M8), archives of whole months, dead letters that can be dismissed.

- readings (PostgreSQL): declaratively partitioned by range of taken_at, one partition per UTC
  month (readings_yYYYYmMM) and a default partition for anything outside them. Every unique
  key includes taken_at: the key is (id, taken_at), the replay guards are (meter_id, taken_at)
  and (meter_id, uplink_id, taken_at). Existing rows are moved into the new table; ids and
  their sequence are kept. On SQLite (dev) the table stays plain.
- reading_archives: a month moved out to a Parquet file, with its checksum and manifest.
- dead_letters.reading_at / dismissed_at / dismissed_by_user_id: an open dead letter holds back
  the archive of its reading's month until it is replayed or dismissed.

Revision ID: 0027
Revises: 0026
"""
from datetime import date

from alembic import op
import sqlalchemy as sa


revision = '0027'
down_revision = '0026'
branch_labels = None
depends_on = None

COLUMNS = "id, meter_id, taken_at, register, consumption, received_at, uplink_id"


def _months(first: date, last: date):
    month = first.replace(day=1)
    while month <= last:
        yield month
        month = date(month.year + month.month // 12, month.month % 12 + 1, 1)


def _partition_sql(month: date) -> str:
    following = date(month.year + month.month // 12, month.month % 12 + 1, 1)
    return (f"CREATE TABLE readings_y{month.year:04d}m{month.month:02d} PARTITION OF readings"
            f" FOR VALUES FROM ('{month.isoformat()} 00:00:00+00') TO ('{following.isoformat()} 00:00:00+00')")


def upgrade():
    op.create_table('reading_archives',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('month', sa.Date(), nullable=False),
    sa.Column('path', sa.String(length=500), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('rows', sa.BigInteger(), nullable=False),
    sa.Column('manifest', sa.JSON(), nullable=False),
    sa.Column('archived_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('restored_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reading_archives')),
    sa.UniqueConstraint('month', name=op.f('uq_reading_archives_month'))
    )
    with op.batch_alter_table('dead_letters', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reading_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('dismissed_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('dismissed_by_user_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_dead_letters_reading_at'), ['reading_at'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_dead_letters_dismissed_by_user_id_users'), 'users',
                                    ['dismissed_by_user_id'], ['id'])

    if op.get_bind().dialect.name != 'postgresql':
        with op.batch_alter_table('readings', schema=None) as batch_op:
            batch_op.drop_constraint('uq_readings_meter_id_uplink_id', type_='unique')
            batch_op.create_unique_constraint('uq_readings_meter_id_uplink_id_taken_at',
                                              ['meter_id', 'uplink_id', 'taken_at'])
        return

    conn = op.get_bind()
    op.execute("ALTER TABLE readings RENAME TO readings_plain")
    for name in ("pk_readings", "uq_readings_meter_id_taken_at", "uq_readings_meter_id_uplink_id"):
        op.execute(f"ALTER TABLE readings_plain RENAME CONSTRAINT {name} TO {name}_plain")
    op.execute(
        "CREATE TABLE readings ("
        " id integer NOT NULL DEFAULT nextval('readings_id_seq'::regclass),"
        " meter_id integer NOT NULL,"
        " taken_at timestamp with time zone NOT NULL,"
        " register numeric(20, 6) NOT NULL,"
        " consumption numeric(20, 6),"
        " received_at timestamp with time zone NOT NULL,"
        " uplink_id varchar(64),"
        " CONSTRAINT pk_readings PRIMARY KEY (id, taken_at),"
        " CONSTRAINT uq_readings_meter_id_taken_at UNIQUE (meter_id, taken_at),"
        " CONSTRAINT uq_readings_meter_id_uplink_id_taken_at UNIQUE (meter_id, uplink_id, taken_at),"
        " CONSTRAINT fk_readings_meter_id_meters FOREIGN KEY (meter_id) REFERENCES meters (id)"
        ") PARTITION BY RANGE (taken_at)")
    op.execute("ALTER SEQUENCE readings_id_seq OWNED BY readings.id")
    # A partition for every month that has readings, this month and the next three; the
    # default partition takes anything else until the daily job gives its month a partition.
    first, last = conn.execute(sa.text(
        "SELECT (min(taken_at) AT TIME ZONE 'UTC')::date, (max(taken_at) AT TIME ZONE 'UTC')::date"
        " FROM readings_plain")).one()
    today = conn.execute(sa.text("SELECT (now() AT TIME ZONE 'UTC')::date")).scalar()
    ahead = date(today.year + (today.month + 2) // 12, (today.month + 2) % 12 + 1, 1)
    months = set(_months(today, ahead))
    if first is not None:
        months |= set(_months(first, last))
    for month in sorted(months):
        op.execute(_partition_sql(month))
    op.execute("CREATE TABLE readings_default PARTITION OF readings DEFAULT")
    op.execute(f"INSERT INTO readings ({COLUMNS}) SELECT {COLUMNS} FROM readings_plain")
    op.execute("DROP TABLE readings_plain")


def downgrade():
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("ALTER TABLE readings RENAME TO readings_partitioned")
        for name in ("pk_readings", "uq_readings_meter_id_taken_at", "uq_readings_meter_id_uplink_id_taken_at"):
            op.execute(f"ALTER TABLE readings_partitioned RENAME CONSTRAINT {name} TO {name}_partitioned")
        op.execute(
            "CREATE TABLE readings ("
            " id integer NOT NULL DEFAULT nextval('readings_id_seq'::regclass),"
            " meter_id integer NOT NULL, taken_at timestamp with time zone NOT NULL,"
            " register numeric(20, 6) NOT NULL, consumption numeric(20, 6),"
            " received_at timestamp with time zone NOT NULL, uplink_id varchar(64),"
            " CONSTRAINT pk_readings PRIMARY KEY (id),"
            " CONSTRAINT uq_readings_meter_id_taken_at UNIQUE (meter_id, taken_at),"
            " CONSTRAINT uq_readings_meter_id_uplink_id UNIQUE (meter_id, uplink_id),"
            " CONSTRAINT fk_readings_meter_id_meters FOREIGN KEY (meter_id) REFERENCES meters (id))")
        op.execute("ALTER SEQUENCE readings_id_seq OWNED BY readings.id")
        op.execute(f"INSERT INTO readings ({COLUMNS}) SELECT {COLUMNS} FROM readings_partitioned")
        op.execute("DROP TABLE readings_partitioned CASCADE")
    else:
        with op.batch_alter_table('readings', schema=None) as batch_op:
            batch_op.drop_constraint('uq_readings_meter_id_uplink_id_taken_at', type_='unique')
            batch_op.create_unique_constraint('uq_readings_meter_id_uplink_id', ['meter_id', 'uplink_id'])
    with op.batch_alter_table('dead_letters', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_dead_letters_dismissed_by_user_id_users'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_dead_letters_reading_at'))
        batch_op.drop_column('dismissed_by_user_id')
        batch_op.drop_column('dismissed_at')
        batch_op.drop_column('reading_at')
    op.drop_table('reading_archives')
