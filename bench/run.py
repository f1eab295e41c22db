"""Benchmark the service against the framework floor, on this machine, in one command.

    .venv/bin/python bench/run.py            # full run, about three minutes
    .venv/bin/python bench/run.py --quick    # a smoke run, about 30 seconds
    .venv/bin/python bench/run.py --check    # exit 1 when a target is missed

What it does, in one run (the targets are those of issue 14, for the traffic an EHR really sends):

1. starts the real service with ``cds-service serve`` (gunicorn gthread, preload, the workers
   and threads of the service's defaults or ``--workers``/CDS_THREADS, CDS_AUTH=off, a temporary
   SQLite file) and the floor app (``bench/floor_app.py``: the same gunicorn options, a handler
   that returns a constant JSON body); the time from process start to the first successful
   order-sign answer is the cold start (median of 3 starts);
2. drives both from a separate load-generator process (``bench/loadgen.py``) on 127.0.0.1 with 16
   keep-alive connections, floor and service taking turns in rounds, in two scenarios:
   *not therapy* (statin and CT orders with ``fhirServer`` set to a loopback FHIR stand-in and no
   prefetch: the stand-in counts every request the service makes, which must be none) and
   *therapy* (100 distinct typical order-sign calls round-robin, about 60 prefetched resources
   each, no two sharing a patient, id or value); prints requests/s, p50 and p99, CPU use, ratios;
3. times the same kind of therapy call in process (``bench/profile_sign.py --distinct``: each
   body sent once, the median per call);
4. the open loop: therapy calls sent on a fixed schedule at half the throughput measured in 2,
   whatever the answers do; latency counts from when each call was due;
5. single-client order-sign calls with growing charts (100, 1,000, 10,000 prefetched resources)
   to the service and the floor; server time comes from the service's audit trail
   (``audit.duration_ms``), client time from the load generator;
6. memory: the proportional set size (PSS) of each server's master and workers after the
   concurrent scenarios, and the peak RSS at the end;
7. prints PASS/FAIL lines for the targets; ``--check`` makes a failed target exit 1.

``--soak MINUTES`` runs the soak instead (``bench/soak.py``): a steady mixed load at half
capacity, reporting RSS growth, errors and spool depth.

Nothing is installed and nothing needs root; it needs the project installed in the running
interpreter (the README's install command).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import scenarios  # noqa: E402
from loadgen import percentile  # noqa: E402

SIGN_PATH = f"/cds-services/{scenarios.ORDER_SIGN_SERVICE}"
SELECT_PATH = f"/cds-services/{scenarios.ORDER_SELECT_SERVICE}"
# A 10,000-resource chart is about 6 MB of JSON; the default body limit (5 MB) would refuse it.
MAX_BODY_BYTES = 32 * 1024 * 1024


@dataclass
class Plan:
    workers: int
    threads: int
    clients: int
    warmup: float
    duration: float
    sizes: tuple[int, ...]
    chart_duration: float
    chart_requests: int
    chart_min_requests: int
    rounds: int
    cold_starts: int
    distinct: int  # distinct therapy bodies sent round-robin under load
    in_process_calls: int  # distinct calls timed in process
    open_duration: float


def make_plan(args: argparse.Namespace) -> Plan:
    from cds_service.config import Settings

    settings = Settings.from_env()  # the service's own defaults (from the core count) unless set
    workers = args.workers or settings.workers
    if args.quick:
        return Plan(workers, settings.threads, args.clients, 0.3, 1.0, (100, 1000), 0.5, 10, 2, 1, 1, 100, 40, 1.5)
    return Plan(workers, settings.threads, args.clients, args.warmup, args.duration, (100, 1000, 10000), 4.0, 100, 3,
                args.rounds, 3, 100, 300, args.duration)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    database: Path | None = None
    cold_start_s: float = 0.0
    cold_starts: list[float] = field(default_factory=list)
    memory: dict[str, Any] = field(default_factory=dict)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=25)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def post(port: int, path: str, body: bytes, timeout: float = 10.0) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def start_server(name: str, command: list[str], env: dict[str, str], port: int, workdir: Path,
                 probe: bytes, database: Path | None = None, limit_s: float = 60.0) -> Server:
    """Start a server and wait for its first successful order-sign answer (the cold start)."""
    log_path = workdir / f"{name}.log"
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=log_path.open("wb"),
                               cwd=workdir, start_new_session=True)
    server = Server(name, process, port, log_path, database)
    while True:
        if process.poll() is not None:
            raise SystemExit(f"{name} exited with status {process.returncode} while starting; see its log:\n"
                             + log_path.read_text(errors="replace")[-3000:])
        try:
            status = post(port, SIGN_PATH, probe)
        except OSError:
            status = 0
        if status == 200:
            server.cold_start_s = time.perf_counter() - started
            return server
        if status not in (0,):
            server.stop()
            raise SystemExit(f"{name} answered the probe with HTTP {status}; see {log_path}")
        if time.perf_counter() - started > limit_s:
            server.stop()
            raise SystemExit(f"{name} did not answer within {limit_s:.0f} s; see {log_path}")
        time.sleep(0.01)


def start_sampled(name: str, launch: Any, workdir: Path, probe: bytes, samples: int) -> Server:
    """Start a server ``samples`` times (each on a fresh port and database, all but the last stopped
    again) and keep the last; its ``cold_starts`` lists every measured start."""
    times: list[float] = []
    for index in range(samples):
        port = free_port()
        database = workdir / f"{name}-{index}.sqlite3"
        command, env = launch(port, database)
        server = start_server(name, command, env, port, workdir, probe, database)
        times.append(server.cold_start_s)
        if index < samples - 1:
            server.stop()
    server.cold_starts = times
    server.cold_start_s = statistics.median(times)
    return server


def process_tree(pid: int) -> list[int]:
    pids, queue = [], [pid]
    while queue:
        current = queue.pop()
        pids.append(current)
        try:
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            children = []
        queue.extend(int(child) for child in children)
    return pids


def _status_kb(pid: int, field_name: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _pss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def memory(pid: int) -> dict[str, Any]:
    """Peak RSS (VmHWM) summed over master and workers, and their current proportional set size
    (PSS: shared pages of the preloaded app counted once)."""
    pids = process_tree(pid)
    return {
        "processes": len(pids),
        "peak_rss_mb": sum(_status_kb(p, "VmHWM") for p in pids) / 1024,
        "master_peak_rss_mb": _status_kb(pid, "VmHWM") / 1024,
        "pss_mb": sum(_pss_kb(p) for p in pids) / 1024,
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a server's master and workers so far."""
    total = 0
    for member in process_tree(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / os.sysconf("SC_CLK_TCK")


def loadgen(port: int, path: str, body_file: Path, connections: int, warmup: float, duration: float,
            requests: int = 0, min_requests: int = 1, latencies: Path | None = None, rate: float = 0.0) -> dict[str, Any]:
    """Run the load generator; a ``.bodies.json`` file holds a JSON array of bodies sent round-robin."""
    which = "--bodies" if body_file.name.endswith(".bodies.json") else "--body"
    command = [sys.executable, str(HERE / "loadgen.py"), "--port", str(port), "--path", path, which, str(body_file),
               "--connections", str(connections), "--warmup", str(warmup), "--duration", str(duration),
               "--requests", str(requests), "--min-requests", str(min_requests)]
    if latencies is not None:
        command += ["--latencies", str(latencies)]
    if rate:
        command += ["--rate", f"{rate:.3f}"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise SystemExit(f"load generator failed: {result.stderr.strip()[-2000:]}")
    return json.loads(result.stdout)


def merge_rounds(runs: list[dict[str, Any]], latency_files: list[Path]) -> dict[str, Any]:
    """One result from several measured rounds: counts and times added, percentiles over all latencies."""
    latencies = sorted(value for file in latency_files for value in json.loads(file.read_text()))
    seconds = sum(run["seconds"] for run in runs)
    statuses: dict[str, int] = {}
    for run in runs:
        for status, count in run["statuses"].items():
            statuses[status] = statuses.get(status, 0) + count
    return {
        "rounds": len(runs),
        "connections": runs[0]["connections"],
        "requests": len(latencies),
        "errors": sum(run["errors"] for run in runs),
        "statuses": statuses,
        "seconds": seconds,
        "rps": len(latencies) / seconds if seconds else 0.0,
        "p50_ms": percentile(latencies, 0.50),
        "p90_ms": percentile(latencies, 0.90),
        "p99_ms": percentile(latencies, 0.99),
        "max_ms": latencies[-1] if latencies else 0.0,
        "body_bytes": runs[0]["body_bytes"],
        "client_cpu_pct": sum(run["client_cpu_pct"] * run["seconds"] for run in runs) / seconds if seconds else 0.0,
        "round_rps": [run["rps"] for run in runs],
    }


def audit_durations(database: Path | None, hook_instance: str) -> list[float]:
    """Server-side time of each call of one hook instance, from the service's audit trail."""
    if database is None or not database.exists():
        return []
    try:
        with sqlite3.connect(database) as connection:
            rows = connection.execute(
                "SELECT duration_ms FROM audit WHERE hook_instance = ? AND status = 200 ORDER BY id", (hook_instance,)
            ).fetchall()
    except sqlite3.Error:
        return []
    return [float(row[0]) for row in rows]


def fmt(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def in_process_median(calls: int) -> dict[str, Any]:
    """The in-process median of ``calls`` distinct typical order-sign calls (bench/profile_sign.py)."""
    result = subprocess.run([sys.executable, str(HERE / "profile_sign.py"), "--distinct", str(calls), "--json"],
                            capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise SystemExit(f"profile_sign.py failed: {result.stderr.strip()[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="benchmark the service against the framework floor")
    parser.add_argument("--quick", action="store_true", help="a short smoke run (about 30 seconds)")
    parser.add_argument("--workers", type=int, default=None,
                        help="gunicorn worker processes for both servers (default: the service's, CDS_WORKERS "
                             "or from the core count)")
    parser.add_argument("--clients", type=int, default=16, help="concurrent keep-alive connections (default 16)")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up per concurrent run")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds measured per scenario and server")
    parser.add_argument("--rounds", type=int, default=3, help="floor and service take turns this many times per scenario")
    parser.add_argument("--json", type=Path, help="also write the raw results to this file")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (bodies, server logs, databases)")
    parser.add_argument("--soak", type=float, metavar="MINUTES",
                        help="instead: a steady mixed load at half capacity for MINUTES (bench/soak.py); reports RSS "
                             "growth, errors and spool depth; exits 1 when a soak target is missed")
    parser.add_argument("--database-url", help="with --soak: run the service on this database instead of SQLite")
    args = parser.parse_args(argv)
    if args.soak is not None:
        import soak

        return soak.run_soak(args.soak, args.workers or 2, args.database_url, sys.modules[__name__])
    plan = make_plan(args)

    from cds_service.testing.fhir_standin import FhirStandIn

    today = datetime.now(timezone.utc).date()
    workdir = Path(tempfile.mkdtemp(prefix="cds-bench-"))
    standin = FhirStandIn(resources=[]).start()  # counts every FHIR request the service makes

    def body_file(name: str, body: Any) -> Path:
        path = workdir / (f"{name}.bodies.json" if isinstance(body, list) else f"{name}.json")
        path.write_bytes(scenarios.encode(body))
        return path

    therapy_bodies = scenarios.distinct_order_sign_requests(plan.distinct, today)
    scenario_files = {
        "not-therapy": body_file("not-therapy", scenarios.not_therapy_requests(standin.base_url, plan.distinct, today)),
        "therapy": body_file("therapy", therapy_bodies),
    }
    charts: dict[int, tuple[Path, str]] = {}  # size -> body file, hookInstance (the key of its audit rows)
    for size in plan.sizes:
        body = scenarios.big_chart_request(size, "ra223", today)
        charts[size] = (body_file(f"chart-{size}", body), body["hookInstance"])

    base_env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "CDS_STRICT_FHIR")}
    base_env.update({"CDS_AUTH": "off", "CDS_LOG_LEVEL": "WARNING", "CDS_MAX_BODY_BYTES": str(MAX_BODY_BYTES),
                     "CDS_PROFILE": "dev", "PYTHONUNBUFFERED": "1"})
    probe = scenarios.encode(scenarios.order_sign_request("ra223", today))
    load_start = os.getloadavg()
    wall_start = time.perf_counter()
    servers: dict[str, Server] = {}

    def serve_command(port: int) -> list[str]:
        return [sys.executable, "-m", "cds_service.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
                "--workers", str(plan.workers)]

    results: dict[str, Any] = {"concurrent": {}, "charts": {}, "fhir_requests": {}}
    try:
        servers["service"] = start_sampled(
            "service", lambda port, db: (serve_command(port), {**base_env, "CDS_SQLITE_PATH": str(db)}),
            workdir, probe, plan.cold_starts)
        servers["floor"] = start_sampled(
            "floor", lambda port, db: ([sys.executable, str(HERE / "floor_app.py"), "--port", str(port),
                                        "--workers", str(plan.workers)], base_env),
            workdir, probe, plan.cold_starts)
        servers["floor"].database = None  # the floor keeps no audit trail

        # Floor and service take turns (rounds of duration/rounds seconds each), so that load from other
        # work on the machine that comes and goes weighs on both alike.
        for scenario, file in scenario_files.items():
            rounds: dict[str, list[dict[str, Any]]] = {"floor": [], "service": []}
            files: dict[str, list[Path]] = {"floor": [], "service": []}
            cpu = {"floor": [0.0, 0.0], "service": [0.0, 0.0]}
            seen_before = len(standin.requests_seen)
            for index in range(plan.rounds):
                for target in ("floor", "service"):
                    pid = servers[target].process.pid
                    latency_file = workdir / f"latencies-{scenario}-{target}-{index}.json"
                    warmup = plan.warmup if index == 0 else min(0.5, plan.warmup)
                    cpu_before, wall_before = cpu_seconds(pid), time.perf_counter()
                    rounds[target].append(loadgen(servers[target].port, SIGN_PATH, file, plan.clients, warmup,
                                                  plan.duration / plan.rounds, latencies=latency_file))
                    cpu[target][0] += cpu_seconds(pid) - cpu_before
                    cpu[target][1] += time.perf_counter() - wall_before
                    files[target].append(latency_file)
            results["fhir_requests"][scenario] = len(standin.requests_seen) - seen_before
            for target in ("floor", "service"):
                run = merge_rounds(rounds[target], files[target])
                run["server_cpu_pct"] = 100 * cpu[target][0] / cpu[target][1]
                results["concurrent"][(scenario, target)] = run
        for name, server in servers.items():  # steady state, after typical traffic
            server.memory = memory(server.process.pid)

        results["in_process"] = in_process_median(plan.in_process_calls)

        therapy_rps = results["concurrent"][("therapy", "service")]["rps"]
        rate = max(1.0, therapy_rps / 2)
        results["open_loop"] = loadgen(servers["service"].port, SIGN_PATH, scenario_files["therapy"], plan.clients,
                                       min(1.0, plan.warmup), plan.open_duration, rate=rate)

        for size in plan.sizes:
            file, instance = charts[size]
            for mode, target in (("fast", "service"), ("floor", "floor")):
                run = loadgen(servers[target].port, SIGN_PATH, file, 1, 0.0, plan.chart_duration,
                              plan.chart_requests, plan.chart_min_requests)
                server_ms = audit_durations(servers[target].database, instance)[1:]  # the first call was the warm-up
                run["server_p50_ms"] = statistics.median(server_ms) if server_ms else None
                run["server_max_ms"] = max(server_ms) if server_ms else None
                results["charts"][(size, mode)] = run

        for name, server in servers.items():
            server.memory["end"] = memory(server.process.pid)
    finally:
        for server in servers.values():
            server.stop()
        standin.stop()
        if args.keep:
            print(f"kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    load_end = os.getloadavg()
    elapsed = time.perf_counter() - wall_start

    failed = report(plan, servers, results, load_start, load_end, elapsed, args)
    if args.json:
        args.json.write_text(json.dumps({
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "plan": plan.__dict__,
            "load_start": load_start, "load_end": load_end,
            "concurrent": {f"{s}/{t}": r for (s, t), r in results["concurrent"].items()},
            "fhir_requests": results["fhir_requests"],
            "in_process": results["in_process"],
            "open_loop": results["open_loop"],
            "charts": {f"{n}/{m}": r for (n, m), r in results["charts"].items()},
            "servers": {name: {"cold_start_s": s.cold_start_s, "cold_starts": s.cold_starts, **s.memory}
                        for name, s in servers.items()},
        }, indent=2))
    return 1 if failed and args.check else 0


def report(plan: Plan, servers: dict[str, Server], results: dict[str, Any], load_start: tuple[float, ...],
           load_end: tuple[float, ...], elapsed: float, args: argparse.Namespace) -> bool:
    out = print
    out(f"cds-service benchmark, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs, "
        f"Python {sys.version.split()[0]}{' (quick mode)' if args.quick else ''}")
    out(f"servers: gunicorn gthread, {plan.workers} workers x {plan.threads} threads, preload; CDS_AUTH=off; "
        f"temporary SQLite; body limit {MAX_BODY_BYTES // (1024 * 1024)} MiB")
    out(f"load generator: separate process, {plan.clients} keep-alive connections, {plan.warmup:g} s warm-up, "
        f"{plan.duration:g} s measured per scenario and server, in {plan.rounds} alternating round(s)")
    out(f"load average: {' '.join(f'{x:.2f}' for x in load_start)} at start, "
        f"{' '.join(f'{x:.2f}' for x in load_end)} at end; run took {elapsed:.0f} s")
    out("")
    out(f"Concurrent load ({plan.clients} clients, closed loop; not-therapy: statin and CT orders, fhirServer set, "
        f"no prefetch; therapy: {plan.distinct} distinct typical order-sign bodies round-robin)")
    out(f"{'scenario':<13}{'server':<9}{'body KB':>8}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}"
        f"{'server CPU':>12}{'client CPU':>12}")
    concurrent = results["concurrent"]
    for (scenario, target), run in concurrent.items():
        out(f"{scenario:<13}{target:<9}{run['body_bytes'] / 1024:>8.1f}{run['rps']:>10.0f}{run['p50_ms']:>9.2f}"
            f"{run['p99_ms']:>9.2f}{run['errors']:>8}{run['server_cpu_pct']:>11.0f}%{run['client_cpu_pct']:>11.0f}%")
    out("(CPU in % of one core: the server's master and workers over the whole run, warm-up included; the load")
    out(" generator itself while measuring. Both share the machine's cores.)")
    out("")
    ratios: dict[str, dict[str, float]] = {}
    for scenario in ("not-therapy", "therapy"):
        service, floor = concurrent[(scenario, "service")], concurrent[(scenario, "floor")]
        ratio = {
            "rps": service["rps"] / floor["rps"] if floor["rps"] else 0.0,
            "p50": service["p50_ms"] / floor["p50_ms"] if floor["p50_ms"] else float("inf"),
            "p99": service["p99_ms"] / floor["p99_ms"] if floor["p99_ms"] else float("inf"),
        }
        ratios[scenario] = ratio
        out(f"ratio service/floor, {scenario}: throughput {ratio['rps']:.2f}, p50 {ratio['p50']:.2f}x, "
            f"p99 {ratio['p99']:.2f}x")
    out(f"FHIR requests the service made to the stand-in: not-therapy {results['fhir_requests']['not-therapy']}, "
        f"therapy {results['fhir_requests']['therapy']}")
    out("")
    in_process = results["in_process"]
    out(f"In process (bench/profile_sign.py --distinct {in_process['calls']}, each body once): median "
        f"{in_process['median_ms']:.2f} ms, p90 {in_process['p90_ms']:.2f} ms, mean {in_process['mean_ms']:.2f} ms")
    open_loop = results["open_loop"]
    out(f"Open loop (therapy bodies at {open_loop['rate']:.0f} req/s, half the closed-loop throughput, "
        f"{plan.open_duration:g} s): {open_loop['requests']} answered of {open_loop['offered']} due, p50 "
        f"{open_loop['p50_ms']:.2f} ms, p99 {open_loop['p99_ms']:.2f} ms, max {open_loop['max_ms']:.2f} ms, "
        f"{open_loop['connections']} connections, {open_loop['errors']} errors")
    out("")
    out("Growing charts (order-sign, one client; server time from the audit trail, median)")
    out(f"{'resources':>9}{'body KB':>9}{'server ms':>11}{'client p50':>12}{'client p99':>12}{'floor p50':>11}"
        f"{'calls':>7}")
    charts = results["charts"]
    for size in plan.sizes:
        fast = charts[(size, "fast")]
        floor = charts[(size, "floor")]
        out(f"{size:>9}{fast['body_bytes'] / 1024:>9.0f}{fmt(fast['server_p50_ms']):>11}{fast['p50_ms']:>12.1f}"
            f"{fast['p99_ms']:>12.1f}{floor['p50_ms']:>11.1f}{fast['requests']:>7}")
    out("")
    out("Cold start (process start to first successful order-sign answer; median and slowest of the starts)")
    out("and memory (PSS after the concurrent scenarios; peak RSS and PSS at the end, after the big charts)")
    out(f"{'server':<9}{'cold start s':>13}{'slowest s':>11}{'starts':>8}{'processes':>11}{'PSS MB':>9}"
        f"{'end PSS MB':>12}{'peak RSS MB':>13}")
    for name, server in servers.items():
        mem = server.memory
        end = mem.get("end", {})
        out(f"{name:<9}{server.cold_start_s:>13.2f}{max(server.cold_starts):>11.2f}{len(server.cold_starts):>8}"
            f"{mem.get('processes', 0):>11}{mem.get('pss_mb', 0):>9.0f}{end.get('pss_mb', 0):>12.0f}"
            f"{end.get('peak_rss_mb', 0):>13.0f}")
    out("(PSS is the proportional set size: pages shared by the preloaded master and its workers divided among")
    out(" them; peak RSS is the sum of VmHWM over master and workers, counting shared pages once per process)")
    out("")

    other, other_floor = concurrent[("not-therapy", "service")], concurrent[("not-therapy", "floor")]
    therapy, therapy_floor = concurrent[("therapy", "service")], concurrent[("therapy", "floor")]
    median_ms = in_process["median_ms"]

    def chart_ms(size: int) -> float | None:
        run = charts.get((size, "fast"))
        if run is None:
            return None
        return run["server_p50_ms"] if run["server_p50_ms"] is not None else run["p50_ms"]

    checks: list[tuple[str, bool | None, str]] = [
        ("1 not-therapy throughput >= 50% of floor", other["rps"] >= 0.5 * other_floor["rps"],
         f"{other['rps']:.0f} vs {other_floor['rps']:.0f} req/s ({ratios['not-therapy']['rps']:.0%})"),
        ("1 not-therapy p99 <= 2x floor p99", other["p99_ms"] <= 2 * other_floor["p99_ms"],
         f"{other['p99_ms']:.2f} ms vs 2 x {other_floor['p99_ms']:.2f} ms"),
        ("1 not-therapy makes no FHIR request", results["fhir_requests"]["not-therapy"] == 0,
         f"{results['fhir_requests']['not-therapy']} requests to the stand-in"),
        ("2 therapy throughput >= 25% of floor", therapy["rps"] >= 0.25 * therapy_floor["rps"],
         f"{therapy['rps']:.0f} vs {therapy_floor['rps']:.0f} req/s ({ratios['therapy']['rps']:.0%})"),
        (f"2 therapy p99 <= 3x own p50 at {plan.clients} clients", therapy["p99_ms"] <= 3 * therapy["p50_ms"],
         f"{therapy['p99_ms']:.2f} ms vs 3 x {therapy['p50_ms']:.2f} ms"),
        ("2 therapy in-process median <= 2 ms", median_ms <= 2.0,
         f"{median_ms:.2f} ms over {in_process['calls']} distinct calls"),
        ("3 open-loop p99 <= 4x in-process median", open_loop["p99_ms"] <= 4 * median_ms and open_loop["errors"] == 0,
         f"{open_loop['p99_ms']:.2f} ms vs 4 x {median_ms:.2f} ms at {open_loop['rate']:.0f} req/s"),
    ]
    for size, limit in ((1000, 25.0), (10000, 250.0)):
        value = chart_ms(size)
        checks.append((f"4 {size:,}-resource prefetch < {limit:g} ms server time",
                       None if value is None else value < limit,
                       "not measured in this mode" if value is None else f"{value:.1f} ms"))
    cold = servers["service"].cold_start_s
    checks.append(("5 cold start < 1.5 s", cold < 1.5,
                   f"{cold:.2f} s (median of {len(servers['service'].cold_starts)}; slowest "
                   f"{max(servers['service'].cold_starts):.2f} s)"))
    service_pss = servers["service"].memory.get("pss_mb", 0.0)
    floor_pss = servers["floor"].memory.get("pss_mb", 0.0)
    checks.append(("5 memory <= floor + 80 MB PSS", service_pss <= floor_pss + 80,
                   f"{service_pss:.0f} MB vs {floor_pss:.0f} + 80 MB"))
    errors = sum(run["errors"] for run in [*concurrent.values(), *charts.values()]) + open_loop["errors"]
    checks.append(("no failed requests", errors == 0, f"{errors} errors"))
    out("Targets (issue 14)")
    return report_verdicts(checks, out)


def report_verdicts(checks: list[tuple[str, bool | None, str]], out: Any) -> bool:
    """One PASS, FAIL or SKIP line per target; True when any target failed."""
    failed = False
    for label, ok, detail in checks:
        verdict = "SKIP" if ok is None else ("PASS" if ok else "FAIL")
        failed |= ok is False
        out(f"{verdict} {label}: {detail}")
    return failed


if __name__ == "__main__":
    sys.exit(main())
