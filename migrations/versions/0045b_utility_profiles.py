"""Stored consumption profiles for the utility pages (issue 19, speed).

- profile_runs: one estate x utility x trailing window (7, 30, 90 local days) as computed by
  the daily `utility_profiles` job: its days, weekday and weekend day counts, when, and the
  page's per-unit summary (JSON).
- meter_profiles: each unit meter's use in that window per local hour and day type.

Revision ID: 0045b
Revises: 0044
"""
from alembic import op
import sqlalchemy as sa


revision = "0045b"
down_revision = "0045a"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "profile_runs",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("estate_id", sa.Integer(), sa.ForeignKey("estates.id"), nullable=False),
        sa.Column("utility", sa.String(length=16), nullable=False),
        sa.Column("window_days", sa.SmallInteger(), nullable=False),
        sa.Column("first_day", sa.Date(), nullable=False),
        sa.Column("last_day", sa.Date(), nullable=False),
        sa.Column("weekdays", sa.SmallInteger(), nullable=False),
        sa.Column("weekend_days", sa.SmallInteger(), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=True),
        sa.UniqueConstraint("estate_id", "utility", "window_days"),
    )
    op.create_table(
        "meter_profiles",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("run_id", sa.Integer(), sa.ForeignKey("profile_runs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("meter_id", sa.Integer(), sa.ForeignKey("meters.id"), nullable=False),
        sa.Column("local_hour", sa.SmallInteger(), nullable=False),
        sa.Column("weekend", sa.Boolean(), nullable=False),
        sa.Column("energy", sa.Numeric(20, 6), nullable=False),
        sa.UniqueConstraint("run_id", "meter_id", "local_hour", "weekend"),
    )
    op.create_index("ix_meter_profiles_meter_id", "meter_profiles", ["meter_id"])


def downgrade():
    op.drop_index("ix_meter_profiles_meter_id", table_name="meter_profiles")
    op.drop_table("meter_profiles")
    op.drop_table("profile_runs")
