"""Database fixtures for the ops and storage tests: every ``db_url`` test runs on SQLite and on a
real PostgreSQL (a database created for this run, a fresh schema per test)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
from sqlalchemy.engine import make_url

from cds_service.testing import postgres


def check_postgres(url: str, is_required: bool) -> None:
    """Skip (developer machine) or fail (CI) when PostgreSQL does not answer at ``url``."""
    problem = postgres.unreachable_reason(url)
    if problem is None:
        return
    where = make_url(url).render_as_string(hide_password=True)
    if is_required:
        pytest.fail(
            f"PostgreSQL is required in CI (CI / {postgres.ENV_REQUIRE} set) but {where} does not answer: "
            f"{problem}. Start it (see .ci/run) or set {postgres.ENV_URL}.",
            pytrace=False,
        )
    pytest.skip(f"PostgreSQL not reachable at {where} ({problem}); set {postgres.ENV_URL}")


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    url = postgres.server_url()
    check_postgres(url, postgres.required())
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
