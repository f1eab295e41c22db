"""The framework floor: the service's Flask and gunicorn setup with a handler that does no work.

It answers ``POST /cds-services/<id>`` with a constant JSON body, served through the same
:class:`cds_service.serve.GunicornServer` and the same :func:`cds_service.serve.gunicorn_options`
(gthread workers, threads, keep-alive, preload) as ``cds-service serve``. The handler reads the
request body (gunicorn would have to drain it anyway to keep the connection alive), but does not
parse it: what the floor costs is HTTP, WSGI, Flask routing and JSON output, and nothing of ours.
The only option that differs is ``post_fork``, which in the service reopens the database
connections and here has no database to reopen.

    python bench/floor_app.py --port 8081 --workers 2
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from flask import Flask, Response, jsonify, request

from cds_service.config import Settings
from cds_service import workers
from cds_service.serve import GunicornServer, gunicorn_options

CONSTANT_ANSWER: dict[str, Any] = {"cards": []}


def create_floor_app() -> Flask:
    app = Flask(__name__)
    app.json.sort_keys = False  # the service's JSON settings
    app.json.compact = True

    @app.post("/cds-services/<service_id>")
    def call_service(service_id: str) -> Response:
        request.get_data(cache=False)
        return jsonify(CONSTANT_ANSWER)

    return app


class FloorServer(GunicornServer):
    def load(self) -> Any:
        return create_floor_app()


def _no_database(server: Any, worker: Any) -> None:
    """The floor has no database connections to reopen after the fork."""


def floor_options(host: str, port: int, workers: int, threads: int) -> dict[str, Any]:
    options = gunicorn_options(host, port, workers, threads=threads)
    options["post_fork"] = _no_database
    return options


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="the framework floor for the benchmark")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--workers", type=int, default=None, help="default: the service's (CDS_WORKERS or the core count)")
    args = parser.parse_args(argv)
    settings = Settings.from_env()  # the service's worker and thread defaults (CDS_WORKERS, CDS_THREADS)
    workers.create_table()  # the same connection balancing as the service (cds_service/workers.py)
    FloorServer(floor_options(args.host, args.port, args.workers or settings.workers, settings.threads), settings).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
