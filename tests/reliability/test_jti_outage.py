"""The per-host replay cache used while the database is away (cds_service.security.replay)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine

from cds_service.security.replay import LocalJtiCache, ReplayCache, ReplayCheckUnavailable, ReplayDetected


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_local_cache_refuses_a_live_id_and_forgets_it_once_expired(tmp_path: Path) -> None:
    clock = Clock(1_000.0)
    cache = LocalJtiCache(tmp_path / "jti", clock=clock)
    cache.register("iss", "a", 1_100)
    with pytest.raises(ReplayDetected):
        cache.register("iss", "a", 1_100)
    cache.register("other-iss", "a", 1_100)  # the pair is the key, not the jti alone
    cache.register("iss", "b", 1_010)
    clock.now = 1_050.0
    assert cache.purge() == 1  # "b" expired, "a" still live
    assert cache.live("iss", "a") and not cache.live("iss", "b")
    cache.register("iss", "b", 1_200)  # an expired id may be used again
    clock.now = 2_000.0
    assert cache.purge() == 3 and list((tmp_path / "jti").iterdir()) == []


class AwayOutage:
    def __init__(self) -> None:
        self.reported: list[BaseException] = []

    def outage_active(self) -> bool:
        return bool(self.reported)

    def report_outage(self, error: BaseException) -> None:
        self.reported.append(error)


def unreachable_engine():
    return create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none", connect_args={"connect_timeout": 2})


def test_database_away_falls_back_locally_and_hands_the_id_to_the_spool(tmp_path: Path) -> None:
    spooled: list[dict] = []
    outage = AwayOutage()
    cache = ReplayCache(unreachable_engine(), create=False, local=LocalJtiCache(tmp_path), outage=outage,
                        catch_up=spooled.append)
    cache.register("iss", "j1", 5e9)
    assert len(outage.reported) == 1  # the outbox learns of the outage from the replay check
    assert spooled == [{"iss": "iss", "jti": "j1", "expires_at": int(5e9) + 1}]
    with pytest.raises(ReplayDetected):
        cache.register("iss", "j1", 5e9)
    assert len(spooled) == 1


def test_nothing_to_keep_the_id_in_fails_closed_and_remembers_nothing(tmp_path: Path) -> None:
    def spool_full(row: dict) -> None:
        raise RuntimeError("spool full")

    local = LocalJtiCache(tmp_path)
    cache = ReplayCache(unreachable_engine(), create=False, local=local, outage=AwayOutage(), catch_up=spool_full)
    with pytest.raises(ReplayCheckUnavailable):
        cache.register("iss", "j1", 5e9)
    assert not local.live("iss", "j1")


def test_without_a_fallback_the_check_still_fails_closed(tmp_path: Path) -> None:
    cache = ReplayCache(unreachable_engine(), create=False)
    with pytest.raises(ReplayDetected):
        cache.register("iss", "j1", 5e9)
