"""Settings from the environment: one place that names every variable and its default."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping

DEFAULT_SQLITE_PATH = "cds-service.sqlite3"


class ConfigError(ValueError):
    """A setting has a value the service cannot run with; the message names the variable."""


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name} must be one of on/off/true/false, got {raw!r}")


def _number(env: Mapping[str, str], name: str, default: float, minimum: float = 0.0) -> float:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {raw!r}")
    return value


def _log_format(env: Mapping[str, str]) -> str:
    value = env.get("CDS_LOG_FORMAT", "text").strip().lower() or "text"
    if value not in {"text", "json"}:
        raise ConfigError(f"CDS_LOG_FORMAT must be 'text' or 'json', got {value!r}")
    return value


def _discovery_auth(env: Mapping[str, str]) -> bool:
    raw = env.get("CDS_DISCOVERY_AUTH", "optional").strip().lower() or "optional"
    if raw not in {"optional", "required"}:
        raise ConfigError(f"CDS_DISCOVERY_AUTH must be 'optional' or 'required', got {raw!r}")
    return raw == "required"


def _spool_dir(env: Mapping[str, str]) -> str:
    """CDS_SPOOL_DIR, else the folder "cds-spool" beside CDS_SQLITE_PATH (even when DATABASE_URL
    points at PostgreSQL: in the image that is the state directory /var/lib/cds-service)."""
    explicit = env.get("CDS_SPOOL_DIR", "").strip()
    if explicit:
        return explicit
    sqlite_path = env.get("CDS_SQLITE_PATH", "").strip() or DEFAULT_SQLITE_PATH
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
    fhir_connect_timeout: float = 2.0
    fhir_read_timeout: float = 4.0
    fhir_total_budget: float = 6.0
    fhir_max_pages: int = 5
    strict_fhir: bool = False
    record_dir: str | None = None
    log_level: str = "INFO"
    discovery_token_required: bool = False
    log_format: str = "text"
    # Spool (issue 13): where audit rows, issued cards, feedback and token ids wait while the
    # database is away; None = the folder "cds-spool" beside the SQLite file (see spool_path()).
    spool_dir: str | None = None
    spool_max_bytes: int = 64 * 1024 * 1024
    sqlite_busy_timeout: float = 5.0
    extra: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env
        database_url = env.get("DATABASE_URL", "").strip()
        if not database_url:
            sqlite_path = env.get("CDS_SQLITE_PATH", "").strip() or DEFAULT_SQLITE_PATH
            database_url = f"sqlite:///{Path(sqlite_path).expanduser()}"
        profile = env.get("CDS_PROFILE", "dev").strip().lower() or "dev"
        if profile not in {"dev", "production"}:
            raise ConfigError(f"CDS_PROFILE must be 'dev' or 'production', got {profile!r}")
        auth_raw = env.get("CDS_AUTH", "on")
        return cls(
            database_url=database_url,
            profile=profile,
            auth_enabled=_flag({"CDS_AUTH": auth_raw}, "CDS_AUTH", True),
            public_base_url=(env.get("CDS_PUBLIC_BASE_URL", "").strip().rstrip("/") or None),
            trusted_issuers_path=(env.get("CDS_TRUSTED_ISSUERS", "").strip() or None),
            fhir_allow_private=_flag(env, "CDS_FHIR_ALLOW_PRIVATE", False),
            max_body_bytes=int(_number(env, "CDS_MAX_BODY_BYTES", 5 * 1024 * 1024, minimum=1024)),
            fhir_connect_timeout=_number(env, "CDS_FHIR_CONNECT_TIMEOUT", 2.0, minimum=0.05),
            fhir_read_timeout=_number(env, "CDS_FHIR_READ_TIMEOUT", 4.0, minimum=0.05),
            fhir_total_budget=_number(env, "CDS_FHIR_TOTAL_BUDGET", 6.0, minimum=0.1),
            fhir_max_pages=int(_number(env, "CDS_FHIR_MAX_PAGES", 5, minimum=1)),
            strict_fhir=_flag(env, "CDS_STRICT_FHIR", False),
            record_dir=(env.get("CDS_RECORD_DIR", "").strip() or None),
            log_level=(env.get("CDS_LOG_LEVEL", "INFO").strip().upper() or "INFO"),
            discovery_token_required=_discovery_auth(env),
            log_format=_log_format(env),
            spool_dir=_spool_dir(env),
            spool_max_bytes=int(_number(env, "CDS_SPOOL_MAX_BYTES", 64 * 1024 * 1024, minimum=65536)),
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
