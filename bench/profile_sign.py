"""Profile one order-sign call in process (cProfile), to find where the server time goes.

    .venv/bin/python bench/profile_sign.py --size 1000 [--strict] [--calls 20] [--top 25]

Builds the app as ``cds-service serve`` does (temporary SQLite, CDS_AUTH=off), sends ``--calls``
order-sign requests with a chart of ``--size`` prefetched resources through the Flask test client
(after one warm-up call), and prints the functions with the most cumulative and own time.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import scenarios  # noqa: E402

from cds_service.app import create_app  # noqa: E402
from cds_service.config import Settings  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1000, help="prefetched resources (at least 60)")
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--strict", action="store_true", help="CDS_STRICT_FHIR=true: validate every resource")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--sort", default="cumulative", help="pstats sort key (cumulative, tottime)")
    args = parser.parse_args(argv)

    folder = Path(tempfile.mkdtemp(prefix="cds-profile-"))
    settings = Settings(database_url=f"sqlite:///{folder / 'profile.sqlite3'}", auth_enabled=False,
                        strict_fhir=args.strict, max_body_bytes=64 * 1024 * 1024, log_level="WARNING")
    app = create_app(settings)
    client = app.test_client()
    body = scenarios.encode(scenarios.big_chart_request(args.size))  # 60: the typical order-sign call
    path = f"/cds-services/{scenarios.ORDER_SIGN_SERVICE}"
    headers = {"Content-Type": "application/json"}
    response = client.post(path, data=body, headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)[:500]

    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    for _ in range(args.calls):
        client.post(path, data=body, headers=headers)
    profiler.disable()
    per_call = (time.perf_counter() - started) / args.calls * 1000
    print(f"{args.calls} calls, {args.size} resources, {len(body) / 1024:.0f} KB: {per_call:.1f} ms per call "
          f"under the profiler{' (strict)' if args.strict else ''}")
    pstats.Stats(profiler).sort_stats(args.sort).print_stats(args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
