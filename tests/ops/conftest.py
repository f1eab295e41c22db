"""Database fixtures for the ops and storage tests: every ``db_url`` test runs on SQLite and on a
real PostgreSQL (a database created for this run, a fresh schema per test)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from cds_service.testing import postgres


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    url = postgres.server_url()
    postgres.skip_or_fail_unless_reachable(url, postgres.required())
    with postgres.temporary_database(url) as database_url:
        yield database_url


@pytest.fixture
def postgres_url(postgres_database: str) -> Iterator[str]:
    with postgres.temporary_schema(postgres_database) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'cds.sqlite3'}"
    return request.getfixturevalue("postgres_url")
