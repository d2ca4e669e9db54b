"""The database handle, the declarative base and the column types every model shares."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

import sqlalchemy as sa
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase, registry
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

