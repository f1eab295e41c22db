"""Production serving through gunicorn (never Flask's development server)."""

from __future__ import annotations

import argparse
import gc
from typing import Any

from gunicorn.app.base import BaseApplication

from cds_service.app import create_app
from cds_service.config import Settings
from cds_service.ops import metrics as ops_metrics
from cds_service.ops.logs import configure_logging, gunicorn_logger_class
from cds_service import workers as balance
from cds_service.turns import taking_turns


class GunicornServer(BaseApplication):  # type: ignore[misc]
    """Gunicorn with the app built once in the master (preload), so start-up work is done once
    and every worker forks with the knowledge already loaded."""

    def __init__(self, options: dict[str, Any], settings: Settings) -> None:
        self.options = options
        self.settings = settings
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            if key in self.cfg.settings and value is not None:
                self.cfg.set(key, value)

    def load(self) -> Any:
        app = create_app(self.settings)
        freeze_startup_objects()
        if (self.options.get("threads") or 1) > 1:  # the worker's request threads take turns (cds_service/turns.py)
            app.wsgi_app = taking_turns(app.wsgi_app)  # type: ignore[method-assign]
        return app


def freeze_startup_objects() -> None:
    """Move everything start-up built (the app, the knowledge, the FHIR models and schemas) out
    of the garbage collector's reach, once, in the preloading master. Why: the collector's
    passes kept walking those ~120,000 long-lived objects while a call allocated a large chart
    (a 10,000-resource body parsed into half a million objects took 30 % longer), and each pass
    touched their pages, which a forked worker then had to copy (memory)."""
    gc.collect()
    gc.freeze()


def _post_fork(server: Any, worker: Any) -> None:
    # Database connections must not be shared across a fork: each worker opens its own.
    app = server.app.callable
    if app is not None:
        app.extensions["cds_db"].dispose(close=False)
        # The spool flusher: flushes what this worker spools, and the spool files of
        # processes that have exited (a killed worker, the previous run of the service).
        outbox = app.extensions.get("cds_outbox")
        if outbox is not None:
            outbox.start()


def _child_exit(server: Any, worker: Any) -> None:
    # Retire the exited worker's metric files (prometheus_client multiprocess mode).
    ops_metrics.mark_worker_dead(worker.pid)
    balance.forget(worker.pid)  # and its row in the connection table


def gunicorn_options(host: str, port: int, workers: int, timeout: int = 30, *, threads: int = 4,
                     log_level: str = "INFO", log_format: str = "text", access_log: bool = False) -> dict[str, Any]:
    return {
        "bind": f"{host}:{port}",
        "workers": workers,
        # gthread, taking an even share of the connections (cds_service/workers.py)
        "worker_class": "cds_service.workers.BalancedThreadWorker",
        "threads": threads,
        "timeout": timeout,
        "graceful_timeout": 20,
        "keepalive": 5,
        "preload_app": True,
        # The per-call JSON line already covers hook calls; CDS_ACCESS_LOG=on adds one line per
        # HTTP request (path without query string) on stdout.
        "accesslog": "-" if access_log else None,
        "errorlog": "-",
        "loglevel": log_level.lower(),
        "logger_class": gunicorn_logger_class(log_format),
        "post_fork": _post_fork,
        "child_exit": _child_exit,
        # gunicorn 24+ would open a control socket under $HOME: nothing uses it, the container's
        # root file system is read-only, and two servers on one machine would share the path.
        "control_socket_disable": True,
        "limit_request_line": 8190,
        "limit_request_fields": 100,
    }


def add_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    # Defaults are None: the environment (CDS_HOST, CDS_PORT, CDS_WORKERS) is read by the settings
    # module when the command runs, never while the parser is built (so --help and --version
    # work whatever the environment holds).
    parser = subparsers.add_parser("serve", help="run the service with gunicorn")
    parser.add_argument("--host", default=None, help="address to bind (default $CDS_HOST or 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="port (default $CDS_PORT or 8080)")
    parser.add_argument("--workers", type=int, default=None,
                        help="gunicorn worker processes (default $CDS_WORKERS or 2)")
    parser.add_argument(
        "--record", metavar="DIR", default=None,
        help="save every incoming hook request (credentials stripped) as a replay fixture under DIR "
             "(default: $CDS_RECORD_DIR, off when unset); the files hold patient data",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = Settings.from_env()  # ConfigError -> one line and exit 2 (cds_service.cli)
    # The one log set-up, before anything logs: the first line is already in CDS_LOG_FORMAT.
    configure_logging(settings.log_level, settings.log_format)
    if getattr(args, "record", None):
        settings = settings.with_overrides(record_dir=args.record)
    host = args.host if args.host is not None else settings.host
    port = args.port if args.port is not None else settings.port
    workers = args.workers if args.workers is not None else settings.workers
    options = gunicorn_options(host, port, workers, threads=settings.threads, log_level=settings.log_level,
                               log_format=settings.log_format, access_log=settings.access_log)
    # Before the app is built and the workers fork: metrics go to files every worker shares.
    metrics_dir, created = ops_metrics.prepare_multiprocess()
    balance.create_table()  # shared by the workers this master forks
    try:
        GunicornServer(options, settings).run()
    finally:
        if created:
            ops_metrics.remove_multiprocess_dir(metrics_dir)
    return 0
