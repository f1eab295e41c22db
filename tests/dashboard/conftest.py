"""Database fixtures (SQLite and a real PostgreSQL, as for the ops tests) and the seeded data set."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterator

import pytest

from cds_service.storage.db import make_engine
from tests.dashboard.seed import Dataset, make_dataset, write_dataset
from tests.ops.conftest import db_url, postgres_database, postgres_url  # noqa: F401  (fixtures)

# The security tests' token helpers are a top-level module in their folder.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "security"))


@pytest.fixture(scope="session")
def dataset() -> Dataset:
    return make_dataset()


@pytest.fixture
def seeded_url(db_url: str, dataset: Dataset) -> Iterator[str]:  # noqa: F811
    engine = make_engine(db_url)
    try:
        write_dataset(engine, dataset)
    finally:
        engine.dispose()
    yield db_url
