"""The real server: gunicorn with two workers; the metrics add up across workers."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from cds_service.ops import metrics as ops_metrics
from tests.conftest import therapy_request
from tests.ops.live import free_port, get, metric_samples, post_json, running

SIGN = "/cds-services/radioelement-order-sign"
HEALTHZ = ("cds_http_requests_total", (("endpoint", "/healthz"), ("method", "GET"), ("status", "200")))


def worker_pids(metrics_dir: Path) -> set[int]:
    return {int(m.group(1)) for f in metrics_dir.glob("counter_*.db") if (m := re.match(r"counter_(\d+)\.db", f.name))}


@pytest.fixture
def two_workers(tmp_path):
    port = free_port()
    temp = tmp_path / "tmp"  # serve makes its metrics directory here (TMPDIR), as in the image
    temp.mkdir()
    env = {**os.environ, "CDS_AUTH": "off", "CDS_SQLITE_PATH": str(tmp_path / "cds.sqlite3"), "TMPDIR": str(temp),
           "CDS_LOG_LEVEL": "WARNING", "CDS_THREADS": "4"}
    for name in ("DATABASE_URL", ops_metrics.MULTIPROC_ENV):
        env.pop(name, None)
    base = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "cds_service.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
               "--workers", "2"]
    with running(command, env, base, tmp_path / "server.log") as process:
        (metrics_dir,) = temp.glob("cds-metrics-*")
        yield base, metrics_dir, process, tmp_path / "server.log"
    assert list(temp.glob("cds-metrics-*")) == []  # removed when the server stopped


def test_counts_add_up_across_two_workers(two_workers):
    base, metrics_dir, process, log_path = two_workers
    sent = 1  # the start-up probe
    with ThreadPoolExecutor(max_workers=8) as pool:
        # Keep going until both workers have answered some requests (new connection each time).
        for _ in range(20):
            statuses = list(pool.map(lambda _: get(base + "/healthz")[0], range(20)))
            assert statuses == [200] * 20
            sent += 20
            if len(worker_pids(metrics_dir)) >= 2:
                break
    pids = worker_pids(metrics_dir)
    assert len(pids) >= 2, f"only {pids} answered"

    body = json.dumps(therapy_request(prefetch={})).encode()
    calls = [post_json(base + SIGN, body) for _ in range(3)]
    # Whichever worker answers /metrics, it reports the sum of both workers.
    for _ in range(6):
        status, text = get(base + "/metrics")
        assert status == 200
        found = metric_samples(text.decode())
        assert found[HEALTHZ] == sent
        hook_calls = sum(v for (name, labels), v in found.items() if name == "cds_hook_calls_total")
        assert hook_calls == len(calls)

    # A worker that dies is replaced; what it counted is kept.
    victim = sorted(pids)[0]
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if get(base + "/healthz", timeout=1)[0] == 200:
                sent += 1
        except OSError:
            pass
        live = worker_pids(metrics_dir) - {victim}
        if len(live) >= 2:
            break
        time.sleep(0.2)
    status, text = get(base + "/metrics")
    assert metric_samples(text.decode())[HEALTHZ] == sent

    # One JSON line per call went to stdout of the workers.
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=30)
    lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith('{"ts"')]
    assert len([line for line in lines if line["event"] == "cds.call"]) == len(calls)


def test_healthcheck_command(two_workers):
    base, *_ = two_workers
    ok = subprocess.run([sys.executable, "-m", "cds_service.ops.healthcheck", "--url", base + "/healthz"],
                        capture_output=True, timeout=30)
    assert ok.returncode == 0, ok.stderr
    port = free_port()
    down = subprocess.run([sys.executable, "-m", "cds_service.ops.healthcheck", "--url",
                           f"http://127.0.0.1:{port}/healthz", "--timeout", "1"], capture_output=True, timeout=30)
    assert down.returncode == 1 and b"unhealthy" in down.stderr


def test_prepare_multiprocess_uses_a_fresh_directory(tmp_path):
    saved = ops_metrics.values.ValueClass
    saved_env = os.environ.pop(ops_metrics.MULTIPROC_ENV, None)
    try:
        directory, created = ops_metrics.prepare_multiprocess()
        assert created and Path(directory).is_dir() and os.environ[ops_metrics.MULTIPROC_ENV] == directory
        ops_metrics.remove_multiprocess_dir(directory)
        assert not Path(directory).exists()
        given = tmp_path / "given"
        given.mkdir()
        (given / "counter_999999.db").write_bytes(b"stale")
        directory, created = ops_metrics.prepare_multiprocess(str(given))
        assert not created and list(given.iterdir()) == []  # stale files from an earlier run are gone
    finally:
        # Leave this process as it was: in-process metrics for every later test.
        os.environ.pop(ops_metrics.MULTIPROC_ENV, None)
        if saved_env is not None:
            os.environ[ops_metrics.MULTIPROC_ENV] = saved_env
        ops_metrics.values.ValueClass = saved
    assert ops_metrics.multiprocess_dir() == saved_env
