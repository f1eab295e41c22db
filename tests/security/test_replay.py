"""jti replay cache in the database, shared by several engines (= several gunicorn workers)."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import MetaData, create_engine, inspect

from cds_service.security.jwt_verifier import JwtVerifier
from cds_service.security.errors import AuthenticationError
from cds_service.security.replay import ReplayCache, ReplayDetected, jti_table
from sec_helpers import AUD


@pytest.fixture
def two_workers(tmp_path):
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    engines = [create_engine(url), create_engine(url)]
    yield [ReplayCache(e) for e in engines]
    for e in engines:
        e.dispose()


def test_reuse_is_rejected_across_engines(two_workers):
    worker_a, worker_b = two_workers
    exp = time.time() + 300
    worker_a.register("https://ehr.example.org", "jti-1", exp)
    with pytest.raises(ReplayDetected):
        worker_b.register("https://ehr.example.org", "jti-1", exp)
    with pytest.raises(ReplayDetected):
        worker_a.register("https://ehr.example.org", "jti-1", exp)
    # Same jti from another issuer is a different token.
    worker_b.register("https://other-ehr.example.org", "jti-1", exp)
    assert worker_a.seen("https://other-ehr.example.org", "jti-1")


def test_verifiers_in_two_workers_share_the_replay_cache(two_workers, registry, tokens):
    verifier_a = JwtVerifier(registry, two_workers[0])
    verifier_b = JwtVerifier(registry, two_workers[1])
    token = tokens.make()
    assert verifier_a.verify(token, AUD).iss
    with pytest.raises(AuthenticationError):
        verifier_b.verify(token, AUD)


def test_concurrent_registration_admits_exactly_one(two_workers):
    exp = time.time() + 300
    results: list[str] = []
    barrier = threading.Barrier(8)

    def attempt(cache):
        barrier.wait()
        try:
            cache.register("https://ehr.example.org", "race", exp)
            results.append("ok")
        except ReplayDetected:
            results.append("replay")

    threads = [threading.Thread(target=attempt, args=(two_workers[i % 2],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count("ok") == 1
    assert results.count("replay") == 7


def test_jti_may_be_reused_after_the_first_token_expired(tmp_path):
    clock = [1_000_000.0]
    engine = create_engine(f"sqlite:///{tmp_path / 'r.db'}")
    cache = ReplayCache(engine, clock=lambda: clock[0], purge_interval=10_000)
    cache.register("iss", "j", clock[0] + 60)
    with pytest.raises(ReplayDetected):
        cache.register("iss", "j", clock[0] + 60)
    clock[0] += 120
    cache.register("iss", "j", clock[0] + 60)  # old use expired: accepted and re-recorded
    with pytest.raises(ReplayDetected):
        cache.register("iss", "j", clock[0] + 60)


def test_purge_removes_only_expired_rows(tmp_path):
    clock = [2_000_000.0]
    engine = create_engine(f"sqlite:///{tmp_path / 'p.db'}")
    cache = ReplayCache(engine, clock=lambda: clock[0], purge_interval=10_000)
    cache.register("iss", "old", clock[0] + 10)
    cache.register("iss", "new", clock[0] + 1000)
    clock[0] += 100
    assert cache.purge() == 1
    assert not cache.seen("iss", "old")
    assert cache.seen("iss", "new")


def test_table_goes_on_the_given_metadata(tmp_path):
    metadata = MetaData()
    engine = create_engine(f"sqlite:///{tmp_path / 'm.db'}")
    cache = ReplayCache(engine, metadata)
    assert "jwt_jti" in metadata.tables
    assert jti_table(metadata) is cache.table
    uniques = inspect(engine).get_unique_constraints("jwt_jti")
    assert any(sorted(u["column_names"]) == ["iss", "jti"] for u in uniques)


@pytest.mark.parametrize("iss,jti", [("", "j"), ("i", ""), ("i" * 600, "j"), ("i", "j" * 300)])
def test_rejects_unstorable_values(replay_cache, iss, jti):
    with pytest.raises(ValueError):
        replay_cache.register(iss, jti, time.time() + 60)
