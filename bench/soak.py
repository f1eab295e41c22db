"""Soak: a steady mixed load at half capacity for MINUTES, watching memory, errors and the spool.

    .venv/bin/python bench/run.py --soak 10

1. starts ``cds-service serve`` (``--workers``, CDS_AUTH=off, a temporary SQLite file, or
   ``--database-url``), and measures its order-sign capacity with the load generator (16
   connections, 5 s);
2. a driver process (this file, ``drive``) sends order-select, order-sign and feedback about the
   cards just issued (2 : 2 : 1) at half that rate, paced by a clock (not as fast as possible),
   from 8 keep-alive connections;
3. every 10 s it samples the resident memory (RSS) of the master and workers and ``/readyz``
   (status, spool depth);
4. prints requests by kind, errors (anything but 200, or no answer), p50/p99, RSS after the
   first minute and at the end (growth %), the highest spool depth, and PASS/FAIL for the issue 13
   targets: RSS growth < 10 %, zero errors.

Why half capacity: a soak looks for slow leaks and stuck state under ordinary load, not for the
saturation behaviour the main benchmark measures.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import scenarios  # noqa: E402
from loadgen import percentile  # noqa: E402

SIGN = f"/cds-services/{scenarios.ORDER_SIGN_SERVICE}"
SELECT = f"/cds-services/{scenarios.ORDER_SELECT_SERVICE}"
FEEDBACK = SIGN + "/feedback"
PATTERN = ("select", "sign", "select", "sign", "feedback")


# -- the driver (a process of its own) ------------------------------------------------------------

def drive(port: int, rate: float, seconds: float, sign_file: Path, select_file: Path, connections: int = 8) -> dict:
    sign_body = sign_file.read_bytes()
    select_body = select_file.read_bytes()
    sign_instance = json.loads(sign_body)["hookInstance"].encode()
    select_instance = json.loads(select_body)["hookInstance"].encode()
    lock = threading.Lock()
    cards: list[str] = []
    stats: dict[str, Any] = {"sent": {}, "errors": {}, "latencies": {kind: [] for kind in ("select", "sign", "feedback")}}
    start = time.monotonic() + 0.2
    end = start + seconds
    slot = [0]

    def next_slot() -> tuple[int, float]:
        with lock:
            index = slot[0]
            slot[0] += 1
        return index, start + index / rate

    def request(connection: http.client.HTTPConnection, kind: str) -> tuple[int, bytes]:
        if kind == "sign":
            body = sign_body.replace(sign_instance, str(uuid.uuid4()).encode(), 1)
            path = SIGN
        elif kind == "select":
            body = select_body.replace(select_instance, str(uuid.uuid4()).encode(), 1)
            path = SELECT
        else:
            with lock:
                card = cards.pop() if cards else None
            if card is None:
                return -1, b""
            body = json.dumps({"feedback": [{"card": card, "outcome": "overridden",
                                             "outcomeTimestamp": datetime.now(timezone.utc).isoformat(),
                                             "overrideReason": {"reason": {"code": "soak", "system": "urn:soak"}}}]}).encode()
            path = FEEDBACK
        connection.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, response.read()

    def worker() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while True:
            index, due = next_slot()
            if due >= end:
                return
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            kind = PATTERN[index % len(PATTERN)]
            began = time.perf_counter()
            try:
                status, payload = request(connection, kind)
            except (OSError, http.client.HTTPException) as error:
                status, payload = 0, type(error).__name__.encode()
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            if status == -1:
                continue  # no card to give feedback on yet
            elapsed = (time.perf_counter() - began) * 1000
            with lock:
                stats["sent"][kind] = stats["sent"].get(kind, 0) + 1
                stats["latencies"][kind].append(elapsed)
                if status != 200:
                    key = f"{kind} {status or payload.decode()}"
                    stats["errors"][key] = stats["errors"].get(key, 0) + 1
                elif kind == "sign":
                    cards.extend(card["uuid"] for card in json.loads(payload)["cards"][:1])
                    del cards[:-1000]

    threads = [threading.Thread(target=worker) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stats["elapsed_s"] = time.monotonic() - start
    for kind, values in stats["latencies"].items():
        values.sort()
        stats["latencies"][kind] = {"p50": percentile(values, 0.5), "p99": percentile(values, 0.99)} if values else {}
    return stats


# -- the orchestrator (called by bench/run.py --soak) ----------------------------------------------

def rss_kb(pid: int, tree) -> int:  # type: ignore[no-untyped-def]
    total = 0
    for member in tree(pid):
        try:
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def readyz(port: int) -> dict[str, Any]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", "/readyz")
        return json.loads(connection.getresponse().read())
    except (OSError, ValueError, http.client.HTTPException):
        return {"status": "no answer"}
    finally:
        connection.close()


def run_soak(minutes: float, workers: int, database_url: str | None, run: Any) -> int:
    """``run`` is the bench/run.py module (server start, load generator, process tree)."""
    import subprocess

    today = datetime.now(timezone.utc).date()
    workdir = Path(tempfile.mkdtemp(prefix="cds-soak-"))
    sign_file = workdir / "order-sign.json"
    sign_file.write_bytes(scenarios.encode(scenarios.order_sign_request("ra223", today)))
    select_file = workdir / "order-select.json"
    select_file.write_bytes(scenarios.encode(scenarios.order_select_request("lu177-psma", today)))
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "CDS_STRICT_FHIR")}
    env.update({"CDS_AUTH": "off", "CDS_LOG_LEVEL": "WARNING", "CDS_PROFILE": "dev", "PYTHONUNBUFFERED": "1",
                "CDS_SQLITE_PATH": str(workdir / "soak.sqlite3"), "CDS_SPOOL_DIR": str(workdir / "spool")})
    if database_url:
        env["DATABASE_URL"] = database_url
    port = run.free_port()
    command = [sys.executable, "-m", "cds_service.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
               "--workers", str(workers)]
    load_start = os.getloadavg()
    server = run.start_server("service", command, env, port, workdir, sign_file.read_bytes())
    samples: list[dict[str, Any]] = []
    try:
        capacity = run.loadgen(port, SIGN, sign_file, 16, 2.0, 5.0)["rps"]
        rate = capacity / 2
        seconds = minutes * 60
        print(f"soak: order-sign capacity {capacity:.0f} req/s; driving {rate:.0f} req/s "
              f"(select:sign:feedback 2:2:1) for {minutes:g} min", file=sys.stderr)
        driver = subprocess.Popen([sys.executable, str(Path(__file__)), "drive", "--port", str(port), "--rate",
                                   str(rate), "--seconds", str(seconds), "--sign", str(sign_file), "--select",
                                   str(select_file)], stdout=subprocess.PIPE, text=True)
        began = time.monotonic()
        while driver.poll() is None:
            state = readyz(port)
            samples.append({"t": time.monotonic() - began, "rss_kb": rss_kb(server.process.pid, run.process_tree),
                            "status": state.get("status"),
                            "spool_depth": ((state.get("checks") or {}).get("spool") or {}).get("depth")})
            try:
                driver.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        output, _ = driver.communicate()
        stats = json.loads(output)
        final = readyz(port)
        samples.append({"t": time.monotonic() - began, "rss_kb": rss_kb(server.process.pid, run.process_tree),
                        "status": final.get("status"),
                        "spool_depth": ((final.get("checks") or {}).get("spool") or {}).get("depth")})
    finally:
        server.stop()
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)
    load_end = os.getloadavg()
    warm = [s for s in samples if s["t"] >= min(60.0, seconds / 5)] or samples
    baseline, last = warm[0]["rss_kb"], samples[-1]["rss_kb"]
    growth = 100 * (last - baseline) / baseline if baseline else 0.0
    errors = sum(stats["errors"].values())
    depth = max((s["spool_depth"] or 0) for s in samples)
    statuses = sorted({s["status"] for s in samples})
    total = sum(stats["sent"].values())
    print(f"\nSoak: {minutes:g} min, {workers} workers, {'PostgreSQL' if database_url else 'SQLite'}; "
          f"load average {load_start[0]:.1f} at the start, {load_end[0]:.1f} at the end")
    print(f"  capacity (order-sign, 16 connections): {capacity:.0f} req/s; target {rate:.0f} req/s; "
          f"achieved {total / stats['elapsed_s']:.1f} req/s")
    print(f"  requests: {total} ({', '.join(f'{k} {v}' for k, v in sorted(stats['sent'].items()))})")
    for kind, lat in sorted(stats["latencies"].items()):
        if lat:
            print(f"  {kind:8s} p50 {lat['p50']:.1f} ms  p99 {lat['p99']:.1f} ms")
    print(f"  errors: {errors} {stats['errors'] or ''}")
    print(f"  RSS (master + workers): {baseline / 1024:.1f} MB at {warm[0]['t']:.0f} s, "
          f"{last / 1024:.1f} MB at the end: {growth:+.1f} %  (peak {max(s['rss_kb'] for s in samples) / 1024:.1f} MB)")
    print(f"  spool depth: max {depth}; /readyz statuses seen: {', '.join(statuses)}")
    checks = [("RSS growth < 10 %", growth < 10.0), ("zero errors", errors == 0)]
    for name, ok in checks:
        print(f"  {'PASS' if ok else 'FAIL'}  {name}")
    return 0 if all(ok for _, ok in checks) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="soak driver (started by bench/run.py --soak)")
    parser.add_argument("mode", choices=["drive"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--sign", type=Path, required=True)
    parser.add_argument("--select", type=Path, required=True)
    args = parser.parse_args(argv)
    print(json.dumps(drive(args.port, args.rate, args.seconds, args.sign, args.select)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
