"""The database handle, the declarative base, the column types every model shares, and what a
transaction's end means to the code that acts on it (`on_transaction_end`)."""

from __future__ import annotations

import enum
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

import sqlalchemy as sa
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase, Session, SessionTransaction, registry
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """An aware datetime stored in UTC.

    PostgreSQL keeps `timestamptz`; SQLite keeps naive UTC text. Either way Python code only
    ever sees aware UTC values, and a naive value is refused rather than guessed at.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass an aware UTC datetime")
        value = value.astimezone(UTC)
        return value if dialect.name == "postgresql" else value.replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base: `str` enums are stored by value as short strings, not native enums.

    Plain strings keep migrations simple when a state is added and read well in SQL.
    """

    registry = registry(
        metadata=sa.MetaData(
            naming_convention={
                "ix": "ix_%(column_0_label)s",
                "uq": "uq_%(table_name)s_%(column_0_name)s",
                "ck": "ck_%(table_name)s_%(constraint_name)s",
                "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
                "pk": "pk_%(table_name)s",
            }
        ),
        type_annotation_map={
            datetime: UTCDateTime(),
            enum.Enum: sa.Enum(
                enum.Enum,
                native_enum=False,
                length=24,
                values_callable=lambda members: [m.value for m in members],
                validate_strings=True,
            ),
            dict[str, Any]: sa.JSON(),
            list[Any]: sa.JSON(),
        },
    )

    if TYPE_CHECKING:
        # Each model maps one table (none maps a join or a select), so its __table__, which
        # DeclarativeBase types as any FromClause, is a Table: `Scan.__table__.insert()`.
        __table__: ClassVar[sa.Table]


db = SQLAlchemy(model_class=Base)

# The models' base class. At run time it is `db.Model`: `Base` plus Flask-SQLAlchemy's table names
# from class names and bind keys. mypy cannot take a base class from an attribute
# (python/mypy#8603), so it checks the models against `Base`, whose typed columns they use.
if TYPE_CHECKING:
    Model = Base
else:
    Model = db.Model

#: The (committed, rolled_back) pairs `on_transaction_end` has registered.
_ENDS: set[tuple[Callable[[Session], None], Callable[[Session], None]]] = set()


def on_transaction_end(committed: Callable[[Session], None],
                       rolled_back: Callable[[Session], None]) -> None:
    """Call `committed(session)` once a session's transaction has committed, and
    `rolled_back(session)` once it has rolled back: the whole transaction, never a savepoint.

    SQLAlchemy reports a savepoint's release (`begin_nested`) as a commit and its rollback as
    a rollback, while the transaction around it may still go either way. Work handed to other
    processes then (a job queued, a change announced) would reach them before its rows, or
    after the rows were undone. Registers the pair once, however often the app is built.
    """
    if (committed, rolled_back) in _ENDS:
        return
    _ENDS.add((committed, rolled_back))

    def after_commit(session: Session) -> None:
        if not session.in_nested_transaction():
            committed(session)

    def after_rollback(session: Session, previous: SessionTransaction) -> None:
        if previous.parent is None:
            rolled_back(session)

    sa.event.listen(Session, "after_commit", after_commit)
    sa.event.listen(Session, "after_soft_rollback", after_rollback)
