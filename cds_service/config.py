"""Settings from the environment: the one place that names every ``CDS_*`` variable, its default
and its expected form.

Nothing else in the package reads ``CDS_*`` variables, so a bad value is reported once, at start,
as one line naming the variable, the value and what was expected (:class:`ConfigError`), instead
of as a traceback from whichever module happened to read it first.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Mapping, TypeVar

DEFAULT_SQLITE_PATH = "cds-service.sqlite3"

# Prefetch fallback: one pair of defaults for the FHIR client and the outbound guard alike.
DEFAULT_FHIR_CONNECT_TIMEOUT = 2.0
DEFAULT_FHIR_READ_TIMEOUT = 4.0

DEFAULT_JWT_ALGORITHMS: tuple[str, ...] = ("ES384", "RS384")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}

T = TypeVar("T")


class ConfigError(ValueError):
    """A setting has a value the service cannot run with; the message names the variable, the
    value and the expected form, on one line."""


def bad_value(name: str, raw: str, expected: str) -> ConfigError:
    """The one message form for a bad setting: ``NAME='value': expected <form>``."""
    shown = raw if len(raw) <= 200 else raw[:200] + "..."
    return ConfigError(f"{name}={shown!r}: expected {expected}")


def _raw(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name)
    return None if value is None or value.strip() == "" else value


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = _raw(env, name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise bad_value(name, raw, "a boolean (on/off, true/false, yes/no, 1/0)")


def _number(env: Mapping[str, str], name: str, default: float, minimum: float = 0.0,
            maximum: float | None = None) -> float:
    raw = _raw(env, name)
    if raw is None:
        return default
    bounds = f"at least {minimum:g}" + ("" if maximum is None else f" and at most {maximum:g}")
    try:
        value = float(raw)
    except ValueError:
        raise bad_value(name, raw, f"a number of seconds, {bounds}") from None
    if value != value or value < minimum or (maximum is not None and value > maximum):
        raise bad_value(name, raw, f"a number {bounds}")
    return value


def _cgroup_cpu_limit() -> float | None:
    """The container's CPU limit in cores (cgroup v2 ``cpu.max``, else v1 CFS quota), if any."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            return int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota_us = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        period_us = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        if quota_us > 0 and period_us > 0:
            return quota_us / period_us
    except (OSError, ValueError):
        pass
    return None


def usable_cores() -> int:
    """Cores this process may use: its CPU affinity, capped by a container CPU limit."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    limit = _cgroup_cpu_limit()
    if limit is not None:
        cores = min(cores, max(1, -int(-limit // 1)))  # a limit of 1.5 cores can keep 2 busy
    return max(1, cores)


def default_workers() -> int:
    """One gunicorn worker per usable core (a hook call is CPU work: a worker per core is what
    runs calls in parallel), at least 2 so one slow call never holds the only worker, at most 8."""
    return max(2, min(usable_cores(), 8))


def _integer(env: Mapping[str, str], name: str, default: int, minimum: int, maximum: int | None = None) -> int:
    raw = _raw(env, name)
    if raw is None:
        return default
    bounds = f"at least {minimum}" + ("" if maximum is None else f" and at most {maximum}")
    try:
        value = int(raw.strip())
    except ValueError:
        raise bad_value(name, raw, f"a whole number, {bounds}") from None
    if value < minimum or (maximum is not None and value > maximum):
        raise bad_value(name, raw, f"a whole number {bounds}")
    return value


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...],
            normalise: Callable[[str], str] = str.lower) -> str:
    raw = _raw(env, name)
    if raw is None:
        return default
    value = normalise(raw.strip())
    if value not in choices:
        raise bad_value(name, raw, "one of " + ", ".join(choices))
    return value


def _text(env: Mapping[str, str], name: str) -> str | None:
    raw = _raw(env, name)
    return None if raw is None else raw.strip()


def _base_url(env: Mapping[str, str], name: str) -> str | None:
    raw = _raw(env, name)
    if raw is None:
        return None
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(raw.strip())
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise bad_value(name, raw, "an absolute http(s) URL without query or fragment, e.g. https://cds.example.org")
    return raw.strip().rstrip("/")


def _algorithms(env: Mapping[str, str]) -> tuple[str, ...]:
    raw = _raw(env, "CDS_JWT_ALGORITHMS")
    if raw is None:
        return DEFAULT_JWT_ALGORITHMS
    supported = ("ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
    algorithms = tuple(part.strip() for part in raw.split(",") if part.strip())
    if not algorithms or any(alg not in supported for alg in algorithms):
        raise bad_value("CDS_JWT_ALGORITHMS", raw,
                        "a comma-separated list of " + ", ".join(supported) + " (none and HS* are never accepted)")
    return algorithms


def _log_level(env: Mapping[str, str]) -> str:
    return _choice(env, "CDS_LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"), str.upper)


DASHBOARD_AUTH_MODES = ("basic", "proxy", "off")


def _dashboard(env: Mapping[str, str]) -> dict[str, object]:
    """The dashboard's access settings. Unset mode: Basic when a users file is given, otherwise
    open on loopback in the dev profile and off in production."""
    import ipaddress  # local: the rest of the settings need no address parsing

    raw_mode = _raw(env, "CDS_DASHBOARD_AUTH")
    mode = None if raw_mode is None else raw_mode.strip().lower()
    if mode is not None and mode not in DASHBOARD_AUTH_MODES:
        raise bad_value("CDS_DASHBOARD_AUTH", raw_mode or "", "one of " + ", ".join(DASHBOARD_AUTH_MODES))
    users = _text(env, "CDS_DASHBOARD_USERS")
    if mode == "basic" and users is None:
        raise bad_value("CDS_DASHBOARD_AUTH", "basic", "CDS_DASHBOARD_USERS set as well (a file of name:password-hash lines)")
    raw_proxies = _raw(env, "CDS_DASHBOARD_PROXIES") or ""
    proxies = tuple(item.strip() for item in raw_proxies.split(",") if item.strip())
    for item in proxies:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise bad_value("CDS_DASHBOARD_PROXIES", raw_proxies,
                            "a comma-separated list of IP addresses or networks") from None
    if mode == "proxy" and not proxies:
        raise bad_value("CDS_DASHBOARD_AUTH", "proxy", "CDS_DASHBOARD_PROXIES set as well (the proxy addresses to trust)")
    header = _text(env, "CDS_DASHBOARD_PROXY_HEADER") or "X-Forwarded-User"
    return {"dashboard_auth": mode or ("basic" if users else None), "dashboard_users_path": users,
            "dashboard_proxies": proxies, "dashboard_proxy_header": header}


def _spool_dir(env: Mapping[str, str]) -> str:
    """CDS_SPOOL_DIR, else the folder "cds-spool" beside CDS_SQLITE_PATH (even when DATABASE_URL
    points at PostgreSQL: in the image that is the state directory /var/lib/cds-service)."""
    explicit = _text(env, "CDS_SPOOL_DIR")
    if explicit:
        return explicit
    sqlite_path = _text(env, "CDS_SQLITE_PATH") or DEFAULT_SQLITE_PATH
    return str(Path(sqlite_path).expanduser().parent / "cds-spool")


@dataclass(frozen=True)
class Settings:
    """Runtime configuration. Build it with :meth:`from_env`; tests use :meth:`with_overrides`."""

    database_url: str = f"sqlite:///{DEFAULT_SQLITE_PATH}"
    profile: str = "dev"
    auth_enabled: bool = True
    public_base_url: str | None = None
    trusted_issuers_path: str | None = None
    fhir_allow_private: bool = False
    max_body_bytes: int = 5 * 1024 * 1024
    fhir_connect_timeout: float = DEFAULT_FHIR_CONNECT_TIMEOUT
    fhir_read_timeout: float = DEFAULT_FHIR_READ_TIMEOUT
    fhir_total_budget: float = 6.0
    fhir_max_pages: int = 5
    strict_fhir: bool = False
    fhir_speedups: bool = True  # CDS_FHIR_SPEEDUPS=off: fhir.resources' own code (cds_service/fhir/speedups.py)
    record_dir: str | None = None
    log_level: str = "INFO"
    discovery_token_required: bool = False
    log_format: str = "text"
    access_log: bool = False
    jwt_algorithms: tuple[str, ...] = DEFAULT_JWT_ALGORITHMS
    jwt_leeway: float = 60.0
    # `cds-service serve` (gunicorn) and the command-line tools
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 2
    threads: int = 4
    replay_token: str | None = None
    knowledge_dir: str | None = None  # a site's copy of the knowledge folder; None: the built-in one
    # /dashboard access: None = open on loopback in dev, off in production
    dashboard_auth: str | None = None
    dashboard_users_path: str | None = None
    dashboard_proxies: tuple[str, ...] = ()
    dashboard_proxy_header: str = "X-Forwarded-User"
    # Where audit rows, issued cards, feedback and token ids wait while the database is away;
    # None = the folder "cds-spool" beside the SQLite file (see spool_path()).
    spool_dir: str | None = None
    spool_max_bytes: int = 64 * 1024 * 1024
    sqlite_busy_timeout: float = 5.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        """Parse every variable; raise :class:`ConfigError` on the first bad one."""
        env = os.environ if env is None else env
        database_url = (env.get("DATABASE_URL") or "").strip()
        if not database_url:
            sqlite_path = _text(env, "CDS_SQLITE_PATH") or DEFAULT_SQLITE_PATH
            database_url = f"sqlite:///{Path(sqlite_path).expanduser()}"
        return cls(
            database_url=database_url,
            profile=_choice(env, "CDS_PROFILE", "dev", ("dev", "production")),
            auth_enabled=_flag(env, "CDS_AUTH", True),
            public_base_url=_base_url(env, "CDS_PUBLIC_BASE_URL"),
            trusted_issuers_path=_text(env, "CDS_TRUSTED_ISSUERS"),
            fhir_allow_private=_flag(env, "CDS_FHIR_ALLOW_PRIVATE", False),
            max_body_bytes=_integer(env, "CDS_MAX_BODY_BYTES", 5 * 1024 * 1024, minimum=1024),
            fhir_connect_timeout=_number(env, "CDS_FHIR_CONNECT_TIMEOUT", DEFAULT_FHIR_CONNECT_TIMEOUT, minimum=0.05),
            fhir_read_timeout=_number(env, "CDS_FHIR_READ_TIMEOUT", DEFAULT_FHIR_READ_TIMEOUT, minimum=0.05),
            fhir_total_budget=_number(env, "CDS_FHIR_TOTAL_BUDGET", 6.0, minimum=0.1),
            fhir_max_pages=_integer(env, "CDS_FHIR_MAX_PAGES", 5, minimum=1),
            strict_fhir=_flag(env, "CDS_STRICT_FHIR", False),
            fhir_speedups=_flag(env, "CDS_FHIR_SPEEDUPS", True),
            record_dir=_text(env, "CDS_RECORD_DIR"),
            log_level=_log_level(env),
            discovery_token_required=_choice(env, "CDS_DISCOVERY_AUTH", "optional", ("optional", "required")) == "required",
            log_format=_choice(env, "CDS_LOG_FORMAT", "text", ("text", "json")),
            access_log=_flag(env, "CDS_ACCESS_LOG", False),
            jwt_algorithms=_algorithms(env),
            jwt_leeway=_number(env, "CDS_JWT_LEEWAY", 60.0, minimum=0, maximum=600),
            host=_text(env, "CDS_HOST") or "127.0.0.1",
            port=_integer(env, "CDS_PORT", 8080, minimum=1, maximum=65535),
            workers=_integer(env, "CDS_WORKERS", default_workers(), minimum=1, maximum=64),
            threads=_integer(env, "CDS_THREADS", 4, minimum=1, maximum=256),
            replay_token=_text(env, "CDS_REPLAY_TOKEN"),
            knowledge_dir=_text(env, "CDS_KNOWLEDGE_DIR"),
            **_dashboard(env),  # type: ignore[arg-type]
            spool_dir=_spool_dir(env),
            spool_max_bytes=_integer(env, "CDS_SPOOL_MAX_BYTES", 64 * 1024 * 1024, minimum=65536),
            sqlite_busy_timeout=_number(env, "CDS_SQLITE_BUSY_TIMEOUT", 5.0, minimum=0.0),
        )

    def spool_path(self) -> Path:
        """The spool folder: CDS_SPOOL_DIR, else "cds-spool" beside the SQLite file (in the image
        /var/lib/cds-service/cds-spool, the state directory), else "cds-spool" in the current one."""
        if self.spool_dir:
            return Path(self.spool_dir).expanduser()
        if self.database_url.startswith("sqlite:///") and self.database_url != "sqlite:///:memory:":
            return Path(self.database_url[len("sqlite:///"):]).expanduser().parent / "cds-spool"
        return Path("cds-spool")

    def with_overrides(self, **changes: object) -> "Settings":
        return replace(self, **changes)  # type: ignore[arg-type]


def config_error_line(error: ConfigError, env: Mapping[str, str] | None = None) -> str:
    """The one line a command prints for a bad setting: plain text, or a JSON object when
    ``CDS_LOG_FORMAT=json`` is itself valid (so a log collector expecting JSON still parses it)."""
    env = os.environ if env is None else env
    message = f"cds-service: configuration error: {error}"
    if (env.get("CDS_LOG_FORMAT") or "").strip().lower() == "json":
        import json
        from datetime import datetime, timezone

        return json.dumps({"ts": datetime.now(timezone.utc).isoformat(timespec="milliseconds"), "level": "ERROR",
                           "logger": "cds_service.config", "message": message}, separators=(",", ":"))
    return message
