"""Prometheus metrics, correct with several gunicorn workers.

``cds-service serve`` points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh directory before the
workers fork (see :func:`prepare_multiprocess`); every worker then writes its counters and
histograms to its own memory-mapped files there and ``GET /metrics`` (answered by whichever
worker the request lands on) sums the files of all workers. Without that variable (tests,
``flask run``) the metrics live in the process, on a registry of the app's own.

Label values are bounded: services come from the catalogue, endpoints from Flask's URL rules,
codes and keys are checked against a narrow pattern and anything else is counted as ``other``.
No label ever carries patient data, identifiers or free text.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable, Mapping

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import multiprocess, values
from prometheus_client import disable_created_metrics

# The *_created series double the output and mean nothing once summed over workers.
disable_created_metrics()

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# Hook calls answer within a few seconds at worst (the FHIR budget defaults to 6 s).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 7.5, 10.0, 30.0)

_CODE = re.compile(r"^[0-9A-Za-z]{4,7}$")  # CPT / HCPCS shaped codes: 77750, 0394T, A9606
_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
_INDICATORS = {"info", "warning", "critical"}
_OUTCOMES = {"accepted", "overridden"}


def bounded_code(value: Any) -> str:
    return value if isinstance(value, str) and _CODE.match(value) else "other"


def bounded_key(value: Any) -> str:
    return value if isinstance(value, str) and _KEY.match(value) else "other"


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


def prepare_multiprocess(directory: str | None = None) -> tuple[str, bool]:
    """Switch this process to multiprocess metrics before any worker forks.

    Uses ``directory`` (or ``PROMETHEUS_MULTIPROC_DIR`` if already set) after removing stale
    files left by an earlier run, or else a fresh temporary directory. Returns the directory and
    whether it was created here (and should be removed on exit).
    """
    directory = directory or multiprocess_dir()
    created = False
    if directory:
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):
            stale.unlink()
    else:
        directory = tempfile.mkdtemp(prefix="cds-metrics-")
        created = True
    os.environ[MULTIPROC_ENV] = directory
    # prometheus_client picks the value class when it is first imported; metrics created from
    # now on must write to the shared files, so pick again with the variable set.
    values.ValueClass = values.get_value_class()
    return directory, created


def remove_multiprocess_dir(directory: str) -> None:
    shutil.rmtree(directory, ignore_errors=True)


def mark_worker_dead(pid: int) -> None:
    """gunicorn ``child_exit`` hook body: retire the files of a worker that has exited."""
    if multiprocess_dir():
        multiprocess.mark_process_dead(pid)


class Metrics:
    """The service's metrics. One instance per app, on the app's own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "cds_http_requests", "HTTP requests answered, by endpoint (URL rule), method and status",
            ["endpoint", "method", "status"], registry=r,
        )
        self.hook_calls = Counter(
            "cds_hook_calls", "CDS Hooks service calls, by service and HTTP status", ["service", "status"], registry=r
        )
        self.hook_latency = Histogram(
            "cds_hook_call_duration_seconds", "Time to answer one CDS Hooks service call, by service",
            ["service"], buckets=LATENCY_BUCKETS, registry=r,
        )
        self.phase_latency = Histogram(
            "cds_hook_phase_duration_seconds", "Time spent per phase of a service call (fetch = prefetch and "
            "FHIR fallback, engine = coding decision), by service", ["service", "phase"],
            buckets=LATENCY_BUCKETS, registry=r,
        )
        self.cards = Counter(
            "cds_cards", "Cards returned, by indicator and card type", ["service", "indicator", "card_type"], registry=r
        )
        self.decisions = Counter(
            "cds_decisions", "Coding decisions made, by recommended code", ["service", "recommended_code"], registry=r
        )
        self.documentation_gaps = Counter(
            "cds_documentation_gaps", "Missing-documentation items reported, by key", ["key"], registry=r
        )
        self.fhir_fallback = Counter(
            "cds_fhir_fallback_calls", "Prefetch keys fetched from the FHIR server because the EHR did not "
            "prefetch them, by prefetch key", ["key"], registry=r,
        )
        self.fhir_fallback_failures = Counter(
            "cds_fhir_fallback_failures", "FHIR fallback fetches that failed or timed out, by prefetch key",
            ["key"], registry=r,
        )
        self.feedback = Counter(
            "cds_feedback", "Feedback items stored, by service and outcome", ["service", "outcome"], registry=r
        )
        # The outage spool. Depth is summed over live workers; a dead worker's files are
        # counted again by the worker that claims them.
        self.spool_depth_gauge = Gauge(
            "cds_spool_depth", "Records waiting in the spool for the database (audit rows with their issued "
            "cards, feedback posts, token ids)", registry=r, multiprocess_mode="livesum",
        )
        self.spool_flushed_total = Counter(
            "cds_spool_flushed", "Spooled records written to the database, by kind", ["kind"], registry=r
        )
        self.spool_appended_total = Counter(
            "cds_spool_appended", "Records written to the spool because the database was away, by kind",
            ["kind"], registry=r,
        )
        self.spool_refused_total = Counter(
            "cds_spool_refused", "Records refused because the spool was full or not writable (the newest are "
            "refused, the oldest kept), by kind", ["kind"], registry=r,
        )

        # Set once at start (before the workers fork); "max" keeps it when summing worker files.
        self.knowledge_age = Gauge(
            "cds_knowledge_age_years", "Years between the current year and the code-set year of the coding "
            "knowledge (0 = current; more means the yearly CPT/HCPCS update is due)",
            registry=r, multiprocess_mode="max",
        )

    # -- recording -----------------------------------------------------------------------

    def set_knowledge_age(self, years: int) -> None:
        self.knowledge_age.set(years)

    def observe_request(self, endpoint: str, method: str, status: int) -> None:
        self.requests.labels(endpoint, method, str(status)).inc()

    def observe_call(self, service: str, status: int, duration_s: float, fetch_ms: float | None,
                     engine_ms: float | None, cards: Iterable[Mapping[str, Any]], decisions: Iterable[Mapping[str, Any]],
                     fetched_keys: Iterable[str], unavailable_keys: Iterable[str]) -> None:
        self.hook_calls.labels(service, str(status)).inc()
        self.hook_latency.labels(service).observe(duration_s)
        if fetch_ms is not None:
            self.phase_latency.labels(service, "fetch").observe(fetch_ms / 1000)
        if engine_ms is not None:
            self.phase_latency.labels(service, "engine").observe(engine_ms / 1000)
        for card in cards:
            indicator = card.get("indicator")
            indicator = indicator if indicator in _INDICATORS else "other"
            card_type = bounded_key((card.get("extension") or {}).get("cds-service.card-type") or "unspecified")
            self.cards.labels(service, indicator, card_type).inc()
        for decision in decisions:
            code = code_of(decision.get("recommendedCode"))
            self.decisions.labels(service, bounded_code(code) if code else "none").inc()
            for key in documentation_keys(decision):
                self.documentation_gaps.labels(bounded_key(key)).inc()
        unavailable = set(unavailable_keys)
        for key in fetched_keys:
            self.fhir_fallback.labels(bounded_key(key)).inc()
            if key in unavailable:
                self.fhir_fallback_failures.labels(bounded_key(key)).inc()

    def observe_feedback(self, service: str, items: Iterable[Mapping[str, Any]]) -> None:
        for item in items:
            outcome = item.get("outcome")
            self.feedback.labels(service, outcome if outcome in _OUTCOMES else "other").inc()

    # -- the spool (cds_service.storage.outbox.SpoolObserver) ----------------------------------

    def spool_appended(self, kind: str) -> None:
        self.spool_appended_total.labels(bounded_key(kind)).inc()

    def spool_refused(self, kind: str) -> None:
        self.spool_refused_total.labels(bounded_key(kind)).inc()

    def spool_flushed(self, kind: str, count: int) -> None:
        self.spool_flushed_total.labels(bounded_key(kind)).inc(count)

    def spool_depth(self, depth: int) -> None:
        self.spool_depth_gauge.set(depth)

    # -- exposition ----------------------------------------------------------------------

    def exposition(self) -> tuple[bytes, str]:
        """The text format of every metric: summed over all workers in multiprocess mode."""
        if multiprocess_dir():
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


# -- decision fields (the engine publishes codes as strings or as small objects) ------------

def code_of(value: Any) -> str | None:
    """``"79101"`` or ``{"code": "79101", ...}`` → ``"79101"``."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        code = value.get("code")
        return code if isinstance(code, str) else None
    return None


def key_of(value: Any) -> str | None:
    """A coded item (``"key"`` or ``{"key"|"code"|"id": ...}``) → its key; free text is not a key."""
    if isinstance(value, str):
        return value if _KEY.match(value) else None
    if isinstance(value, Mapping):
        for name in ("key", "code", "id"):
            if isinstance(value.get(name), str):
                return value[name]
    return None


def documentation_keys(decision: Mapping[str, Any]) -> list[str]:
    return _keys(decision.get("missingDocumentation"))


def warning_keys(decision: Mapping[str, Any]) -> list[str]:
    return _keys(decision.get("warnings"))


def _keys(items: Any) -> list[str]:
    if not isinstance(items, list):
        return []
    found = [key_of(item) for item in items]
    return [key for key in found if key]
