"""A small closed-loop HTTP/1.1 load generator: N keep-alive connections, one request in flight each.

Run as its own process by ``bench/run.py`` (so it never shares an interpreter with a server). It
drives all connections from one thread with non-blocking sockets and ``selectors`` (epoll on
Linux), sends pre-encoded request bytes and reads just the status line and ``Content-Length``:
per request it costs a few tens of microseconds of CPU, which matters on a 2-core machine where
the client competes with the server (a thread per connection with ``http.client`` costs several
times more and would cap the floor's throughput at the client's speed).

Phases: warm-up (until ``--warmup`` seconds have passed *and* every connection has had one
answer), then measurement (``--duration`` seconds or ``--requests`` answers, whichever comes
first, but at least ``--min-requests``). Only requests started and finished inside the
measurement window are counted. Prints one JSON object on stdout.

``--bodies FILE`` (a JSON array of request bodies) sends them round-robin instead of one body,
so that a server cannot answer from a per-body cache.

``--rate R`` is the open-loop mode: requests are sent on a fixed schedule of R per second
whatever the answers do (a closed loop slows down with the server and hides its queueing).
A request goes out on an idle keep-alive connection, or a new one when all are busy; its
latency counts from the moment it was due, so time spent waiting for a connection counts too.

    python bench/loadgen.py --port 8080 --path /cds-services/x --body body.json --connections 16
    python bench/loadgen.py --port 8080 --path /cds-services/x --bodies bodies.json --rate 150
"""

from __future__ import annotations

import argparse
import json
import selectors
import socket
import sys
import time
from typing import Any


class Connection:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.sock: socket.socket | None = None
        self.out = memoryview(b"")
        self.buf = bytearray()
        self.started = 0.0
        self.answers = 0
        self.header_end = -1
        self.length = -1
        self.status = 0
        self.close_after = False

    def open(self) -> socket.socket:
        sock = socket.create_connection((self.host, self.port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        self.sock = sock
        return sock

    def reset_response(self) -> None:
        self.buf.clear()
        self.header_end = -1
        self.length = -1
        self.status = 0
        self.close_after = False

    def advance(self, events: int, selector: selectors.BaseSelector) -> bool:
        """Send or read on a selector event; True once a whole response is in the buffer."""
        assert self.sock is not None
        if events & selectors.EVENT_WRITE:
            sent = self.sock.send(self.out)
            self.out = self.out[sent:]
            if not self.out:
                selector.modify(self.sock, selectors.EVENT_READ, self)
            return False
        chunk = self.sock.recv(262144)
        if not chunk:
            raise ConnectionError("server closed the connection")
        self.buf += chunk
        return self.parse()

    def parse(self) -> bool:
        """True when a complete response is in the buffer."""
        if self.header_end < 0:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return False
            self.header_end = end + 4
            head = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
            self.status = int(head[0].split(" ", 2)[1])
            for line in head[1:]:
                name, _, value = line.partition(":")
                name = name.strip().lower()
                if name == "content-length":
                    self.length = int(value.strip())
                elif name == "connection" and value.strip().lower() == "close":
                    self.close_after = True
                elif name == "transfer-encoding":
                    raise RuntimeError("chunked responses are not supported by this load generator")
            if self.length < 0:
                raise RuntimeError("response without Content-Length")
        return len(self.buf) >= self.header_end + self.length


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending list (0 when empty)."""
    if not sorted_values:
        return 0.0
    rank = max(1, min(len(sorted_values), int(-(-fraction * len(sorted_values) // 1))))
    return sorted_values[rank - 1]


def encoded_requests(args: argparse.Namespace) -> list[bytes]:
    """The request bytes to send, one per body (round-robin when several)."""
    if args.bodies:
        with open(args.bodies, "rb") as handle:
            bodies = [json.dumps(body, separators=(",", ":")).encode("utf-8") for body in json.load(handle)]
    else:
        with open(args.body, "rb") as handle:
            bodies = [handle.read()]
    if not bodies:
        raise SystemExit("loadgen: no request body")
    return [
        (f"POST {args.path} HTTP/1.1\r\nHost: {args.host}:{args.port}\r\n"
         f"Content-Type: application/json\r\nAccept: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
         ).encode("ascii") + body
        for body in bodies
    ]


def summary(args: argparse.Namespace, latencies: list[float], errors: int, statuses: dict[str, int], window: float,
            cpu_used: float, body_bytes: int) -> dict[str, Any]:
    latencies.sort()
    if args.latencies:
        with open(args.latencies, "w") as handle:
            json.dump([round(value * 1000, 4) for value in latencies], handle)
    return {
        "connections": args.connections,
        "requests": len(latencies),
        "errors": errors,
        "statuses": statuses,
        "seconds": window,
        "rps": len(latencies) / window if window > 0 else 0.0,
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p90_ms": percentile(latencies, 0.90) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "max_ms": (latencies[-1] * 1000) if latencies else 0.0,
        "body_bytes": body_bytes,
        "client_cpu_pct": 100 * cpu_used / window if window > 0 else 0.0,  # of one core, while measuring
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    requests = encoded_requests(args)
    if args.rate:
        return run_open(args, requests)
    body_bytes = sum(len(request) for request in requests) // len(requests)
    sent_count = 0

    selector = selectors.DefaultSelector()
    connections = [Connection(args.host, args.port) for _ in range(args.connections)]
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    errors = 0
    t0 = time.perf_counter()
    warm_until = t0 + args.warmup
    window_start: float | None = None
    window_end: float | None = None
    cpu_start = cpu_used = 0.0
    hard_stop = t0 + args.warmup + args.duration + args.timeout
    stopping = False

    def send(conn: Connection) -> None:
        nonlocal sent_count
        conn.reset_response()
        conn.out = memoryview(requests[sent_count % len(requests)])
        sent_count += 1
        conn.started = time.perf_counter()
        assert conn.sock is not None
        selector.modify(conn.sock, selectors.EVENT_WRITE, conn)

    def reopen(conn: Connection) -> None:
        if conn.sock is not None:
            selector.unregister(conn.sock)
            conn.sock.close()
        selector.register(conn.open(), selectors.EVENT_WRITE, conn)

    for conn in connections:
        selector.register(conn.open(), selectors.EVENT_WRITE, conn)
        send(conn)

    in_flight = len(connections)
    while in_flight:
        now = time.perf_counter()
        if now > hard_stop:
            break
        if window_start is None and now >= warm_until and all(c.answers for c in connections):
            window_start = now
            cpu_start = time.process_time()
        if window_start is not None and window_end is None:
            enough_time = now >= window_start + args.duration
            enough_answers = args.requests and len(latencies) >= args.requests
            if (enough_time or enough_answers) and len(latencies) >= args.min_requests:
                window_end = now
                cpu_used = time.process_time() - cpu_start
                stopping = True
        for key, events in selector.select(timeout=0.05):
            conn: Connection = key.data
            try:
                if not conn.advance(events, selector):
                    continue
            except (OSError, ConnectionError, RuntimeError, ValueError, IndexError) as error:
                errors += 1
                statuses[type(error).__name__] = statuses.get(type(error).__name__, 0) + 1
                if stopping:
                    in_flight -= 1
                    selector.unregister(conn.sock)  # type: ignore[arg-type]
                    continue
                reopen(conn)
                send(conn)
                continue
            finished = time.perf_counter()
            conn.answers += 1
            code = str(conn.status)
            if window_start is not None and conn.started >= window_start and (window_end is None or finished <= window_end):
                statuses[code] = statuses.get(code, 0) + 1
                if 200 <= conn.status < 300:
                    latencies.append(finished - conn.started)
                else:
                    errors += 1
            if stopping:
                in_flight -= 1
                selector.unregister(conn.sock)  # type: ignore[arg-type]
                continue
            if conn.close_after:
                reopen(conn)
            send(conn)
    for conn in connections:
        if conn.sock is not None:
            conn.sock.close()
    if window_start is None:
        raise SystemExit("loadgen: no answer during warm-up (is the server up?)")
    window = (window_end or time.perf_counter()) - window_start
    return summary(args, latencies, errors, statuses, window, cpu_used, body_bytes)


def run_open(args: argparse.Namespace, requests: list[bytes]) -> dict[str, Any]:
    """Open loop: request k is due at start + k / rate; measured are those due inside the window
    (after ``--warmup``), each from its due time to its answer."""
    selector = selectors.DefaultSelector()
    idle: list[Connection] = []
    opened = 0
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    errors = 0
    interval = 1.0 / args.rate
    t0 = time.perf_counter()
    window_start = t0 + args.warmup
    window_end = window_start + args.duration
    hard_stop = window_end + args.timeout
    due_index = 0
    in_flight = 0
    backlog: list[float] = []  # due times of requests still waiting for a connection
    cpu_start = cpu_used = 0.0
    measuring = False
    body_bytes = sum(len(request) for request in requests) // len(requests)

    def dispatch(due: float) -> None:
        nonlocal opened, in_flight
        if idle:
            conn = idle.pop()
        elif opened < args.max_connections:
            conn = Connection(args.host, args.port)
            selector.register(conn.open(), selectors.EVENT_WRITE, conn)
            opened += 1
        else:
            backlog.append(due)
            return
        conn.reset_response()
        conn.out = memoryview(requests[sent_count[0] % len(requests)])
        sent_count[0] += 1
        conn.started = due
        conn.close_after = False
        busy.add(conn)
        selector.modify(conn.sock, selectors.EVENT_WRITE, conn)  # type: ignore[arg-type]
        in_flight += 1

    sent_count = [0]
    busy: set[Connection] = set()
    while True:
        now = time.perf_counter()
        if not measuring and now >= window_start:
            measuring, cpu_start = True, time.process_time()
        if now > hard_stop:
            break
        while backlog and (idle or opened < args.max_connections):
            dispatch(backlog.pop(0))
        next_due = t0 + due_index * interval
        while next_due <= now and next_due < window_end:
            dispatch(next_due)
            due_index += 1
            next_due = t0 + due_index * interval
        if next_due >= window_end and not in_flight and not backlog:
            break
        timeout = max(0.0, min(0.05, next_due - time.perf_counter())) if next_due < window_end else 0.05
        for key, events in selector.select(timeout=timeout):
            conn = key.data
            if conn not in busy:  # an idle keep-alive connection the server closed
                idle.remove(conn)
                selector.unregister(conn.sock)  # type: ignore[arg-type]
                conn.sock.close()  # type: ignore[union-attr]
                opened -= 1
                continue
            try:
                if not conn.advance(events, selector):
                    continue
            except (OSError, ConnectionError, RuntimeError, ValueError, IndexError) as error:
                busy.discard(conn)
                in_flight -= 1
                if window_start <= conn.started < window_end:
                    errors += 1
                    statuses[type(error).__name__] = statuses.get(type(error).__name__, 0) + 1
                selector.unregister(conn.sock)  # type: ignore[arg-type]
                conn.sock.close()  # type: ignore[union-attr]
                opened -= 1
                continue
            finished = time.perf_counter()
            busy.discard(conn)
            in_flight -= 1
            if window_start <= conn.started < window_end:
                code = str(conn.status)
                statuses[code] = statuses.get(code, 0) + 1
                if 200 <= conn.status < 300:
                    latencies.append(finished - conn.started)
                else:
                    errors += 1
            if conn.close_after:
                selector.unregister(conn.sock)  # type: ignore[arg-type]
                conn.sock.close()  # type: ignore[union-attr]
                opened -= 1
            else:
                selector.modify(conn.sock, selectors.EVENT_READ, conn)  # type: ignore[arg-type]
                idle.append(conn)
    if measuring:
        cpu_used = time.process_time() - cpu_start
    for key in list(selector.get_map().values()):
        key.fileobj.close()  # type: ignore[union-attr]
    result = summary(args, latencies, errors, statuses, args.duration, cpu_used, body_bytes)
    due_in_window = sum(1 for k in range(due_index) if window_start <= t0 + k * interval < window_end)
    result.update({"mode": "open", "rate": args.rate, "connections": opened,
                   "offered": due_in_window, "unanswered": in_flight + len(backlog)})
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", required=True)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--body", help="file holding the JSON request body")
    group.add_argument("--bodies", help="file holding a JSON array of request bodies, sent round-robin")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up before measuring")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds measured")
    parser.add_argument("--requests", type=int, default=0, help="stop after this many measured answers (0: no cap)")
    parser.add_argument("--min-requests", type=int, default=1, help="measure at least this many answers")
    parser.add_argument("--timeout", type=float, default=60.0, help="give up this long after the planned end")
    parser.add_argument("--rate", type=float, default=0.0,
                        help="open loop: send this many requests per second on a fixed schedule (0: closed loop)")
    parser.add_argument("--max-connections", type=int, default=256, help="open loop: at most this many connections")
    parser.add_argument("--latencies", help="also write every measured latency (ms, ascending) to this JSON file")
    args = parser.parse_args(argv)
    json.dump(run(args), sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
