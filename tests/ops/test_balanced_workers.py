"""cds_service/workers.py: a worker accepts connections only while no live worker holds fewer,
and a real two-worker server splits a burst of keep-alive connections evenly."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cds_service import workers
from cds_service.testing.required import must_run


def _worker(slot: int, connections: int) -> workers.BalancedThreadWorker:
    worker = object.__new__(workers.BalancedThreadWorker)  # no gunicorn config needed for the rule
    worker._slot = slot
    worker.nr_conns = connections
    return worker


def test_a_worker_holding_more_than_a_live_peer_does_not_accept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workers, "_table", None)
    workers.create_table()
    table = workers._table
    now = workers._now_ms()
    me, peer = os.getpid(), os.getppid()  # both alive
    table[0], table[1], table[2] = me, 5, now
    table[3], table[4], table[5] = peer, 4, now
    assert not _worker(0, 5)._fair()
    assert _worker(0, 4)._fair()  # equal counts: both may accept
    table[4] = 9
    assert _worker(0, 5)._fair()
    table[4], table[5] = 0, now - 10_000  # a peer that stopped reporting (hung) is not waited for
    assert _worker(0, 5)._fair()
    dead = 2**22 + 12345  # no such process: its row is ignored and cleared
    table[3], table[4], table[5] = dead, 0, now
    assert _worker(0, 5)._fair() and table[3] == 0
    workers.forget(me)
    assert table[0] == 0 and table[1] == 0


def test_two_workers_share_a_burst_of_connections(tmp_path: Path) -> None:
    if shutil.which("ss") is None:
        reason = "needs ss (iproute2) to see which worker holds which connection"
        if must_run():
            pytest.fail(f"{reason}; required in CI")
        pytest.skip(reason)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "CDS_AUTH": "off", "CDS_LOG_LEVEL": "WARNING", "CDS_SQLITE_PATH": str(tmp_path / "db.sqlite3"),
           "CDS_PROFILE": "dev", "CDS_WORKERS": "2"}
    server = subprocess.Popen([sys.executable, "-m", "cds_service.cli", "serve", "--port", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    clients: list[socket.socket] = []
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline and server.poll() is None, "the server did not start"
                time.sleep(0.1)
        time.sleep(1.0)  # both workers up
        request = f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
        for _ in range(16):
            client = socket.create_connection(("127.0.0.1", port), timeout=10)
            clients.append(client)
        for client in clients:
            client.sendall(request)
        for client in clients:
            assert client.recv(65536).startswith(b"HTTP/1.1 200")
        listing = subprocess.run(["ss", "-tnpH", "state", "established", f"( sport = :{port} )"],
                                 capture_output=True, text=True, check=True).stdout
        per_worker: dict[str, int] = {}
        for line in listing.splitlines():
            pid = line.split("pid=")[1].split(",")[0] if "pid=" in line else "?"
            per_worker[pid] = per_worker.get(pid, 0) + 1
        assert sorted(per_worker.values()) in ([8, 8], [7, 9]), per_worker
    finally:
        for client in clients:
            client.close()
        server.terminate()
        server.wait(30)
