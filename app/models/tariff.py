"""Tariff classes (C5): an estate's price lists (e.g. residential and PME), one per unit.

Each unit has one class and each tariff version belongs to one class. A ``NULL`` class on a
unit or a version means the estate's default class (``is_default``), so an estate with one
class bills as it always has; `app.billing.tariff_classes.default_class()` creates the default
class on demand.
"""
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import Base, utcnow
from app.models.estate import Estate


class TariffClass(Base):
    """One of an estate's tariff classes; its code is unique within the estate."""

    __tablename__ = "tariff_classes"
    __table_args__ = (
        UniqueConstraint("estate_id", "code"),
        Index("ix_tariff_classes_one_default", "estate_id", unique=True,
              postgresql_where=text("is_default"), sqlite_where=text("is_default")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    estate_id: Mapped[int] = mapped_column(ForeignKey("estates.id"), index=True)
    code: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(100))
    is_default: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    estate: Mapped[Estate] = relationship(back_populates="tariff_classes")

    def __repr__(self) -> str:
        return f"<TariffClass {self.estate_id}/{self.code}>"
