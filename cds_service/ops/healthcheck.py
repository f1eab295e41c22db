"""Container health check without curl: ``python -m cds_service.ops.healthcheck``.

Exits 0 when ``GET /healthz`` on the local service answers 200 within the timeout, else 1.
The port comes from ``CDS_PORT`` (default 8080); ``--url`` overrides the whole address.
"""

from __future__ import annotations

import argparse
import sys
import urllib.error
import urllib.request
from typing import Sequence

from cds_service.config import ConfigError, Settings


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cds_service.ops.healthcheck")
    parser.add_argument("--url", default=None, help="default http://127.0.0.1:$CDS_PORT/healthz")
    parser.add_argument("--timeout", type=float, default=3.0)
    args = parser.parse_args(argv)
    url = args.url
    if url is None:
        try:
            url = f"http://127.0.0.1:{Settings.from_env().port}/healthz"
        except ConfigError as error:
            print(f"unhealthy: configuration error: {error}", file=sys.stderr)
            return 1
    try:
        with urllib.request.urlopen(url, timeout=args.timeout) as response:  # noqa: S310 (local URL)
            ok = response.status == 200
    except (urllib.error.URLError, OSError, ValueError) as error:
        print(f"unhealthy: {error}", file=sys.stderr)
        return 1
    if not ok:
        print("unhealthy: /healthz did not answer 200", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
