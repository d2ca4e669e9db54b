"""Fixtures for the ops tests: an app on this session's PostgreSQL schema and Redis database
(in context, like the reliability tests' `rq_app`), and deployments started with
`scripts/deploy-local` that are always stopped at the end."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.ops.deployment import Deployment, schema_url


@pytest.fixture
def deploy(pg_schema: str, redis_url: str, tmp_path: Path
           ) -> Iterator[Callable[..., Deployment]]:
    """Start `scripts/deploy-local` on this session's schema and Redis database: `deploy(**env)`."""
    started: list[Deployment] = []

    def start(*, database_url: str | None = None, redis: str | None = None,
              config: dict[str, Any] | None = None, **env: str) -> Deployment:
        deployment = Deployment(tmp_path / f"deploy-{len(started)}",
                                database_url=database_url or schema_url(pg_schema),
                                redis_url=redis or redis_url, config=config, **env)
        started.append(deployment)
        return deployment.start()

    yield start
    for deployment in started:
        deployment.stop()
