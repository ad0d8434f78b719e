"""People, logins, role grants and who owns or rents which unit."""
from datetime import date, datetime
from decimal import Decimal

from flask_login import UserMixin
from sqlalchemy import CheckConstraint, ForeignKey, String, event, inspect, literal, select, union
from sqlalchemy.orm import Mapped, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash

from app.models.base import Base, utcnow

ROLES = ("staff", "tenant", "owner", "family", "body_corporate", "agent", "utility")
UNIT_ROLES = ("tenant", "owner", "family")  # granted on one unit
ESTATE_ROLES = ("owner", "body_corporate", "agent", "utility")  # granted on a whole estate


class Person(Base):
    __tablename__ = "persons"

    id: Mapped[int] = mapped_column(primary_key=True)
    full_name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(254))
    phone: Mapped[str | None] = mapped_column(String(32), index=True)
    # The estate whose administration registered the person (its agents see them); None for
    # people made before estate administration existed or registered by staff outside one.
    estate_id: Mapped[int | None] = mapped_column(ForeignKey("estates.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Pages, emails and SMS in this language (app/i18n LANGUAGES); None: the estate's default.
    language: Mapped[str | None] = mapped_column(String(8))

    def __repr__(self) -> str:
        return f"<Person {self.full_name}>"


class User(UserMixin, Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(256))  # None until invite accepted
    active: Mapped[bool] = mapped_column(default=True)
    person_id: Mapped[int | None] = mapped_column(ForeignKey("persons.id"))
    last_login_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Part of every session's id; bumping it ends them all (app/auth/sessions.py).
    session_version: Mapped[int] = mapped_column(default=0, server_default="0")

    person: Mapped[Person | None] = relationship()
    # Loaded only when asked for: an owner may hold hundreds of unit grants, and a request
    # needs just the set of roles (role_set), which is one small DISTINCT query.
    grants: Mapped[list["RoleGrant"]] = relationship(back_populates="user")

    @property
    def is_active(self) -> bool:  # Flask-Login refuses inactive users
        return self.active

    def get_id(self) -> str:
        """The id Flask-Login keeps in the session: with the session version, so logout can end it."""
        return f"{self.id}:{self.session_version}"  # read back by app.auth.sessions.user_for_session

    @property
    def display_name(self) -> str:
        return self.person.full_name if self.person else self.email

    def set_password(self, password: str) -> None:
        self.password_hash = generate_password_hash(password)

    def check_password(self, password: str) -> bool:
        return bool(self.password_hash) and check_password_hash(self.password_hash, password)

    @property
    def role_set(self) -> frozenset[str]:
        """Return the roles the user holds anywhere, computed once per loaded instance."""
        cached = self.__dict__.get("_role_set")
        if cached is None:
            state = inspect(self)
            if "grants" in self.__dict__ or state.session is None or state.key is None:
                cached = frozenset(grant.role for grant in self.grants)
            else:
                from app.models.families import WalletGrant

                # One query: the distinct roles granted, and "family" when a wallet is shared with
                # the user (F2: a live wallet grant opens the family layer).
                shared = select(literal("family").label("role")).where(
                    select(WalletGrant.id).where(WalletGrant.user_id == self.id,
                                                 WalletGrant.revoked_at.is_(None)).exists())
                cached = frozenset(state.session.scalars(union(
                    select(RoleGrant.role).where(RoleGrant.user_id == self.id).distinct(), shared)))
            self.__dict__["_role_set"] = cached
        return cached

    @property
    def is_staff(self) -> bool:
        return "staff" in self.role_set

    @property
    def roles(self) -> list[str]:
        """The user's roles in the order of ROLES (drives the navigation)."""
        held = self.role_set
        return [role for role in ROLES if role in held]

    def __repr__(self) -> str:
        return f"<User {self.email}>"


class RoleGrant(Base):
    """A role for a user, scoped to an estate or a unit; staff grants have neither."""

    __tablename__ = "role_grants"
    __table_args__ = (
        CheckConstraint(
            "(role = 'staff' AND estate_id IS NULL AND unit_id IS NULL)"
            " OR (role <> 'staff' AND (estate_id IS NOT NULL OR unit_id IS NOT NULL))",
            name="scope",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    role: Mapped[str] = mapped_column(String(16))
    estate_id: Mapped[int | None] = mapped_column(ForeignKey("estates.id"))
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    user: Mapped[User] = relationship(back_populates="grants")


def _forget_roles(user: User, *_args) -> None:
    """Drop the cached role set so the next check sees the grants as they are now."""
    if user is not None:  # expiry may reach an instance already garbage-collected
        user.__dict__.pop("_role_set", None)


# A commit or refresh expires the user, and grants added or removed through the
# relationship change it: either way the cached role set is stale.
event.listen(User, "expire", _forget_roles)
event.listen(User, "refresh", _forget_roles)
event.listen(User.grants, "append", _forget_roles)
event.listen(User.grants, "remove", _forget_roles)
event.listen(User.grants, "bulk_replace", _forget_roles)


class UnitOwnership(Base):
    __tablename__ = "unit_ownerships"

    id: Mapped[int] = mapped_column(primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"), index=True)
    share_percent: Mapped[Decimal] = mapped_column(default=Decimal("100"))
    since: Mapped[date]
    until: Mapped[date | None]

    person: Mapped[Person] = relationship()


class Tenancy(Base):
    __tablename__ = "tenancies"

    id: Mapped[int] = mapped_column(primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"), index=True)
    move_in: Mapped[date]
    move_out: Mapped[date | None]

    person: Mapped[Person] = relationship()
