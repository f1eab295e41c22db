"""Time and profile order-sign calls in process, to find where the server time goes.

    .venv/bin/python bench/profile_sign.py --size 1000 [--strict] [--calls 20] [--top 25]
    .venv/bin/python bench/profile_sign.py --distinct 300 [--no-profile] [--json]

Builds the app as ``cds-service serve`` does (temporary SQLite, CDS_AUTH=off) and sends order-sign
requests through the Flask test client, after warm-up calls.

* ``--size N``: ``--calls`` calls with one chart of N prefetched resources (60: the typical call).
* ``--distinct N``: N typical calls that share no patient, id or value
  (:func:`scenarios.distinct_order_sign_requests`), each sent once, so no cache keyed by a body
  or a resource can help. First a timing pass without the profiler, which prints the
  *in-process median* (the per-call budget of issue 14 is 2 ms), then the same calls again
  under cProfile unless ``--no-profile``.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import contextlib
import os
import pstats
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import scenarios  # noqa: E402

from cds_service.app import create_app  # noqa: E402
from cds_service.config import Settings  # noqa: E402
try:
    from cds_service.serve import freeze_startup_objects  # noqa: E402
except ImportError:  # an older tree (bench/RESULTS.md's "before" profile)
    def freeze_startup_objects() -> None:
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1000, help="prefetched resources (at least 60)")
    parser.add_argument("--distinct", type=int, default=0, help="time N distinct typical calls instead")
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--strict", action="store_true", help="CDS_STRICT_FHIR=true: validate every resource")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--sort", default="cumulative", help="pstats sort key (cumulative, tottime)")
    parser.add_argument("--no-profile", action="store_true", help="only the timing pass")
    parser.add_argument("--json", action="store_true", help="print the timing as one JSON object (no profile)")
    args = parser.parse_args(argv)

    folder = Path(tempfile.mkdtemp(prefix="cds-profile-"))
    settings = Settings(database_url=f"sqlite:///{folder / 'profile.sqlite3'}", auth_enabled=False,
                        strict_fhir=args.strict, max_body_bytes=64 * 1024 * 1024, log_level="WARNING")
    app = create_app(settings)
    freeze_startup_objects()  # as cds-service serve does after building the app
    client = app.test_client()
    path = f"/cds-services/{scenarios.ORDER_SIGN_SERVICE}"
    headers = {"Content-Type": "application/json"}
    today = date.today()
    if args.distinct:
        warm = [scenarios.encode(b) for b in scenarios.distinct_order_sign_requests(20, today, seed=1)]
        bodies = [scenarios.encode(b) for b in scenarios.distinct_order_sign_requests(args.distinct, today, seed=2)]
    else:
        warm = [scenarios.encode(scenarios.big_chart_request(args.size, today=today))]  # 60: the typical call
        bodies = warm * args.calls
    # The per-call JSON log line is written (its cost counts) to /dev/null instead of the terminal.
    devnull = open(os.devnull, "w")
    with contextlib.redirect_stdout(devnull):
        for body in warm:
            response = client.post(path, data=body, headers=headers)
            assert response.status_code == 200, response.get_data(as_text=True)[:500]
        times = []
        for body in bodies:
            started = time.perf_counter()
            response = client.post(path, data=body, headers=headers)
            times.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, response.get_data(as_text=True)[:500]
    times.sort()
    timing = {
        "calls": len(times), "distinct": bool(args.distinct), "size": None if args.distinct else args.size,
        "body_kb": round(sum(map(len, bodies)) / len(bodies) / 1024, 1),
        "median_ms": statistics.median(times), "p90_ms": times[int(0.9 * (len(times) - 1))],
        "mean_ms": statistics.fmean(times),
    }
    if args.json:
        print(json.dumps(timing))
        return 0
    kind = f"{len(bodies)} distinct typical calls" if args.distinct else f"{len(bodies)} calls, {args.size} resources"
    print(f"{kind}, {timing['body_kb']:.0f} KB: in-process median {timing['median_ms']:.2f} ms, "
          f"p90 {timing['p90_ms']:.2f} ms, mean {timing['mean_ms']:.2f} ms{' (strict)' if args.strict else ''}")
    if args.no_profile:
        return 0
    if args.distinct:  # the profiled pass needs bodies the service has not seen either
        bodies = [scenarios.encode(b) for b in scenarios.distinct_order_sign_requests(args.distinct, today, seed=3)]
    profiler = cProfile.Profile()
    started = time.perf_counter()
    with contextlib.redirect_stdout(devnull):
        profiler.enable()
        for body in bodies:
            client.post(path, data=body, headers=headers)
        profiler.disable()
    per_call = (time.perf_counter() - started) / len(bodies) * 1000
    print(f"under the profiler: {per_call:.1f} ms per call")
    pstats.Stats(profiler).sort_stats(args.sort).print_stats(args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
