"""A replica that starts before its PostgreSQL server waits for it, then stops with a clear error."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import OperationalError

from cds_service.config import ConfigError
from cds_service.storage.db import make_engine, wait_for_database


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_gives_up_after_the_wait_with_database_url_named():
    engine = make_engine("postgresql://cds:secret-password@127.0.0.1:1/cds")
    clock = Clock()
    with pytest.raises(ConfigError) as raised:
        wait_for_database(engine, timeout=10, sleep=clock.sleep, clock=clock.time)
    message = str(raised.value)
    assert message.startswith("DATABASE_URL: the database at 127.0.0.1:1 did not accept connections within 10 s")
    assert "secret-password" not in message
    assert clock.sleeps[:3] == [0.5, 1.0, 2.0] and sum(clock.sleeps) <= 10


class FlakyEngine:
    """Refuses the first connections, as a PostgreSQL server that is still starting does."""

    def __init__(self, refusals: int) -> None:
        self.refusals = refusals
        self.url = make_engine("postgresql://cds@db:5432/cds").url

    def connect(self):
        if self.refusals:
            self.refusals -= 1
            raise OperationalError("SELECT 1", {}, Exception("connection refused"))
        return make_engine("sqlite://").connect()


def test_waits_until_the_database_answers():
    clock = Clock()
    engine = FlakyEngine(refusals=3)
    wait_for_database(engine, timeout=30, sleep=clock.sleep, clock=clock.time)  # type: ignore[arg-type]
    assert engine.refusals == 0 and len(clock.sleeps) == 3

