"""The whole fixture library replays clean: in process, and against a real `cds-service serve`."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest
import requests

from cds_service.cli import main
from cds_service.replay.fixtures import discover

REPO = Path(__file__).resolve().parents[2]
LIBRARY = REPO / "fhir_fixtures"
MINIMUM_SCENARIOS = 40


def test_library_is_complete_and_every_fixture_has_an_expectation():
    found = discover([LIBRARY])
    assert found.problems == []
    assert len(found.fixtures) >= MINIMUM_SCENARIOS
    without = [f.name for f in found.fixtures if f.expect is None]
    assert without == []
    categories = {f.category.split("/")[-1] for f in found.fixtures}
    assert {"protocol", "sandbox", "silent", "fallback", "order-select", "bundles"} <= categories


def test_library_replays_in_process(tmp_path, capsys):
    report = tmp_path / "replay.json"
    status = main(["replay", str(LIBRARY), "--no-progress", "--json", str(report)])
    out = capsys.readouterr().out
    assert status == 0, out
    summary = json.loads(report.read_text())["summary"]
    assert summary["failed"] == 0 and summary["error"] == 0 and summary["passed"] >= MINIMUM_SCENARIOS
    fixtures = json.loads(report.read_text())["fixtures"]
    # fixtures without prefetch really went through the FHIR fallback over HTTP
    fallback = [f for f in fixtures if "/fallback/" in f"/{f['name']}"]
    assert fallback and all(f["fhir_requests"] > 0 for f in fallback)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The real `cds-service serve` (gunicorn, one worker) with auth off, a temp SQLite and --record."""
    folder = tmp_path_factory.mktemp("served")
    port = free_port()
    record_dir = folder / "recorded"
    env = {**os.environ, "CDS_AUTH": "off", "CDS_SQLITE_PATH": str(folder / "cds.sqlite3"), "CDS_PROFILE": "dev",
           "CDS_LOG_LEVEL": "WARNING"}
    env.pop("DATABASE_URL", None)
    env.pop("CDS_RECORD_DIR", None)
    log = (folder / "serve.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "cds_service.cli", "serve", "--port", str(port), "--workers", "1",
         "--record", str(record_dir)],
        cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(f"{url}/cds-services", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("cds-service serve did not start:\n" + (folder / "serve.log").read_text())
            time.sleep(0.1)
        yield url, record_dir
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def test_library_replays_against_a_served_instance(served, tmp_path, capsys):
    url, record_dir = served
    junit = tmp_path / "replay.xml"
    status = main(["replay", str(LIBRARY), "--url", url, "--no-progress", "--junit", str(junit)])
    out = capsys.readouterr().out
    assert status == 0, out
    assert f"replay summary ({url})" in out

    # --record on the served instance saved every call that reached the hook as a token-free fixture
    recorded = list(record_dir.rglob("*.json"))
    assert recorded
    for path in recorded:
        text = path.read_text()
        assert "fhirAuthorization" not in text and "access_token" not in text
    # and a recording replays in process with the same answer it got from the served instance
    assert main(["replay", str(record_dir), "--no-progress", "--write-expected"]) == 0
    assert main(["replay", str(record_dir), "--no-progress", "--strict"]) == 0
    capsys.readouterr()


def test_replay_against_a_dead_url_is_an_error(tmp_path, capsys):
    fixture = tmp_path / "one.json"
    fixture.write_text(json.dumps({"raw_body": "{", "expect": {"status": 400}}))
    status = main(["replay", str(fixture), "--url", f"http://127.0.0.1:{free_port()}", "--no-progress", "--timeout", "2"])
    assert status == 1
    assert "ERROR" in capsys.readouterr().out
