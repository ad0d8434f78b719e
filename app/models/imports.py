"""Bulk imports (A1): an uploaded file staged as rows, previewed, then committed (app/estates/imports.py)."""
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import Base, utcnow

# staging/committing: a job is reading or applying the file (files over the inline limit).
IMPORT_STATUSES = ("staging", "staged", "committing", "committed", "failed")
ROW_ACTIONS = ("create", "update", "unchanged", "reject")


class ImportBatch(Base):
    """One uploaded file of one kind for one estate, with its preview counts and outcome."""

    __tablename__ = "import_batches"

    id: Mapped[int] = mapped_column(primary_key=True)
    estate_id: Mapped[int] = mapped_column(ForeignKey("estates.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    file_name: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    uploaded_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    committed_at: Mapped[datetime | None]
    committed_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    status: Mapped[str] = mapped_column(String(16), default="staged")
    total_rows: Mapped[int] = mapped_column(default=0)
    to_create: Mapped[int] = mapped_column(default=0)
    to_update: Mapped[int] = mapped_column(default=0)
    unchanged: Mapped[int] = mapped_column(default=0)
    rejected: Mapped[int] = mapped_column(default=0)
    ignored_columns: Mapped[list[str]] = mapped_column(JSON, default=list)
    message: Mapped[str | None] = mapped_column(String(1000))  # why a whole file failed
    # The uploaded bytes, kept only while a job has still to read them (cleared once staged).
    content: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)

    rows: Mapped[list["ImportRow"]] = relationship(back_populates="batch", order_by="ImportRow.row_number",
                                                   lazy="raise_on_sql")

    @property
    def counts(self) -> dict[str, int]:
        return {"create": self.to_create, "update": self.to_update, "unchanged": self.unchanged,
                "reject": self.rejected}


class ImportRow(Base):
    """One data row of a staged file: its identity key, what it will do (or did), its errors."""

    __tablename__ = "import_rows"
    __table_args__ = (UniqueConstraint("batch_id", "row_number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("import_batches.id"), index=True)
    row_number: Mapped[int]  # as a spreadsheet numbers it: the header is row 1
    key: Mapped[str | None] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(16))
    values: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # cleaned values to apply
    raw: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # the cells as the file had them
    errors: Mapped[list[str]] = mapped_column(JSON, default=list)
    object_id: Mapped[int | None]  # the unit, person or meter it made or changed, once committed

    batch: Mapped[ImportBatch] = relationship(back_populates="rows")
