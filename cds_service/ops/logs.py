"""Structured logs: one JSON line per service call on stdout, and optionally JSON for every log.

The call line carries what operators need to follow a call and nothing about the patient:
hook instance, service, hook, issuer, status, timings, prefetch keys, and the decision keys
(recommended codes, missing-documentation keys, warning keys). It never carries patient or
practitioner identifiers, FHIR resources or their ids, error messages (they may quote the
request), the fhirServer URL or any token. The full error text stays in the audit table.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping

from cds_service.ops.metrics import code_of, documentation_keys, warning_keys

CALL_LOGGER = "cds_service.calls"
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


class _StdoutHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stdout`` is at the time (so test capture and re-opened streams
    work)."""

    def __init__(self) -> None:
        super().__init__(sys.stdout)

    @property  # type: ignore[override]
    def stream(self):  # type: ignore[no-untyped-def]
        return sys.stdout

    @stream.setter
    def stream(self, _value) -> None:  # type: ignore[no-untyped-def]
        pass


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """Any log record as one JSON object: time, level, logger, message (+ exception type), plus
    the structured fields a record carries in ``cds_fields`` (gunicorn's access lines)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "cds_fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info and record.exc_info[0] is not None:
            entry["exception"] = record.exc_info[0].__name__
            entry["traceback"] = self.formatException(record.exc_info)
        return json.dumps(entry, separators=(",", ":"), default=str)


class _MessageOnly(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return record.getMessage()


def formatter_for(log_format: str) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)


def configure_logging(level: str = "INFO", log_format: str = "text") -> None:
    """The one log set-up: root logging at ``level`` (JSON lines when ``log_format == "json"``)
    and the call log. ``cds-service serve`` calls it before anything logs, so the first line is
    already in the chosen format; the app factory calls it again (harmless, and tests build many
    apps with different settings).
    """
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler())
    root.setLevel(level)
    for handler in root.handlers:
        # text: leave other formatters (e.g. pytest's capture) alone, undo an earlier JSON set-up
        if log_format == "json" or handler.formatter is None or isinstance(handler.formatter, JsonFormatter):
            handler.setFormatter(formatter_for(log_format))
    calls = logging.getLogger(CALL_LOGGER)
    calls.setLevel(logging.INFO)
    calls.propagate = False  # the line is already JSON; the root format must not wrap it
    if not any(isinstance(handler, _StdoutHandler) for handler in calls.handlers):
        handler = _StdoutHandler()
        handler.setFormatter(_MessageOnly())
        calls.addHandler(handler)


def safe_id(value: Any) -> str | None:
    return value if isinstance(value, str) and _SAFE_ID.match(value) else None


def call_entry(
    *,
    service: str,
    hook: Any,
    hook_instance: Any,
    issuer: str | None,
    status: int,
    duration_ms: float,
    fetch_ms: float | None,
    engine_ms: float | None,
    cards: Iterable[Mapping[str, Any]],
    decisions: Iterable[Mapping[str, Any]],
    fetched_keys: Iterable[str],
    unavailable_keys: Iterable[str],
) -> dict[str, Any]:
    decisions = list(decisions)
    cards = list(cards)
    recommended = [code_of(d.get("recommendedCode")) for d in decisions]
    return {
        "ts": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
        "event": "cds.call",
        "hook_instance": safe_id(hook_instance),
        "service": service,
        "hook": hook if hook in ("order-sign", "order-select") else None,
        "issuer": issuer,
        "status": status,
        "duration_ms": round(duration_ms, 2),
        "fetch_ms": None if fetch_ms is None else round(fetch_ms, 2),
        "engine_ms": None if engine_ms is None else round(engine_ms, 2),
        "fetched_keys": sorted(set(fetched_keys)),
        "unavailable_keys": sorted(set(unavailable_keys)),
        "cards": len(cards),
        "card_types": sorted({str((c.get("extension") or {}).get("cds-service.card-type")) for c in cards
                              if (c.get("extension") or {}).get("cds-service.card-type")}),
        "decisions": len(decisions),
        "recommended_codes": [code for code in recommended if code],
        "missing_documentation": sorted({key for d in decisions for key in documentation_keys(d)}),
        "warnings": sorted({key for d in decisions for key in warning_keys(d)}),
    }


def log_call(entry: Mapping[str, Any]) -> None:
    logging.getLogger(CALL_LOGGER).info(json.dumps(entry, separators=(",", ":"), default=str))


def gunicorn_logger_class(log_format: str) -> type:
    """A gunicorn logger whose error log (start, stop, worker lines) and access log use the
    service's log format, so that with ``CDS_LOG_FORMAT=json`` every line on the console is JSON.

    The access line carries method, path (never the query string, which may hold patient ids),
    status, size and duration.
    """
    from gunicorn.glogging import Logger

    class ServiceGunicornLogger(Logger):  # type: ignore[misc]
        def setup(self, cfg: Any) -> None:
            super().setup(cfg)
            for log in (self.error_log, self.access_log):
                for handler in log.handlers:
                    handler.setFormatter(formatter_for(log_format) if log is self.error_log or log_format == "json"
                                         else logging.Formatter("%(message)s"))

        def access(self, resp: Any, req: Any, environ: Any, request_time: Any) -> None:
            if not (self.cfg.accesslog or self.cfg.logconfig or self.cfg.logconfig_dict or self.cfg.syslog):
                return
            status = getattr(resp, "status_code", None) or str(getattr(resp, "status", "")).split(" ")[0]
            fields = {
                "event": "http.access",
                "method": str(getattr(req, "method", "-"))[:16],
                "path": str(getattr(req, "path", "-"))[:300],
                "status": int(status) if str(status).isdigit() else None,
                "bytes": getattr(resp, "sent", None),
                "duration_ms": round(request_time.total_seconds() * 1000, 2),
            }
            message = f'{fields["method"]} {fields["path"]} {fields["status"]} {fields["bytes"]} {fields["duration_ms"]}ms'
            try:
                self.access_log.info(message, extra={"cds_fields": fields})
            except Exception:  # an access line must never break a response
                self.error_log.exception("could not write the access log line")

    return ServiceGunicornLogger
