"""Migrations build the whole schema on an empty database, matching the models exactly."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask import Flask

from dispatch.db import db


def test_migrations_create_the_schema_the_models_describe(any_app: Flask) -> None:
    with any_app.app_context(), db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, db.metadata) == []
        tables = set(sa.inspect(connection).get_table_names())
    assert {"community", "place", "member", "case", "report", "notification",
            "case_event", "sticker", "alembic_version"} <= tables
