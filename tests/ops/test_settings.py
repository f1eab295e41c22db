"""The one settings module: every variable parsed there, one-line errors naming the variable, the
value and the expected form; nothing else in the package reads CDS_* variables."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cds_service.config import (
    DEFAULT_FHIR_CONNECT_TIMEOUT, DEFAULT_FHIR_READ_TIMEOUT, ConfigError, Settings,
)
from cds_service.fhir.client import FhirClient
from cds_service.security.network import FhirAccessGuard

ROOT = Path(__file__).resolve().parents[2]


def test_defaults():
    settings = Settings.from_env({})
    assert (settings.host, settings.port, settings.workers, settings.threads) == ("127.0.0.1", 8080, 2, 4)
    assert settings.jwt_algorithms == ("ES384", "RS384") and settings.jwt_leeway == 60
    assert settings.log_format == "text" and settings.access_log is False and settings.replay_token is None
    assert not hasattr(settings, "extra")


def test_values_are_parsed():
    settings = Settings.from_env({
        "CDS_HOST": "0.0.0.0", "CDS_PORT": "9000", "CDS_WORKERS": "3", "CDS_THREADS": "8",
        "CDS_JWT_ALGORITHMS": "ES384, PS256", "CDS_JWT_LEEWAY": "30", "CDS_LOG_LEVEL": "warning",
        "CDS_LOG_FORMAT": "JSON", "CDS_ACCESS_LOG": "on", "CDS_REPLAY_TOKEN": " abc ", "CDS_PROFILE": "Production",
        "CDS_PUBLIC_BASE_URL": "https://cds.example.org/",
    })
    assert (settings.host, settings.port, settings.workers, settings.threads) == ("0.0.0.0", 9000, 3, 8)
    assert settings.jwt_algorithms == ("ES384", "PS256") and settings.jwt_leeway == 30
    assert (settings.log_level, settings.log_format, settings.access_log) == ("WARNING", "json", True)
    assert settings.replay_token == "abc" and settings.profile == "production"
    assert settings.public_base_url == "https://cds.example.org"


@pytest.mark.parametrize("name, value, expected", [
    ("CDS_PORT", "eighty", "a whole number, at least 1 and at most 65535"),
    ("CDS_PORT", "70000", "at most 65535"),
    ("CDS_WORKERS", "abc", "a whole number"),
    ("CDS_THREADS", "-1", "at least 1"),
    ("CDS_MAX_BODY_BYTES", "5MB", "a whole number"),
    ("CDS_FHIR_MAX_PAGES", "0", "at least 1"),
    ("CDS_FHIR_CONNECT_TIMEOUT", "fast", "a number of seconds"),
    ("CDS_FHIR_TOTAL_BUDGET", "nan", "a number"),
    ("CDS_JWT_LEEWAY", "900", "at most 600"),
    ("CDS_JWT_ALGORITHMS", "HS256", "none and HS* are never accepted"),
    ("CDS_AUTH", "maybe", "a boolean"),
    ("CDS_ACCESS_LOG", "loud", "a boolean"),
    ("CDS_STRICT_FHIR", "2", "a boolean"),
    ("CDS_PROFILE", "prod", "one of dev, production"),
    ("CDS_LOG_FORMAT", "xml", "one of text, json"),
    ("CDS_LOG_LEVEL", "LOUD", "one of DEBUG"),
    ("CDS_DISCOVERY_AUTH", "always", "one of optional, required"),
    ("CDS_PUBLIC_BASE_URL", "cds.example.org", "an absolute http(s) URL"),
])
def test_a_bad_value_is_one_line_naming_variable_value_and_form(name, value, expected):
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({name: value})
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{name}={value!r}: expected ") and expected in message


def test_no_module_but_the_settings_module_reads_cds_variables():
    readers = re.compile(r"(os\.environ|os\.getenv|environ\.get)[^\n]*[\"']CDS_")
    offenders = [str(path.relative_to(ROOT)) for path in (ROOT / "cds_service").rglob("*.py")
                 if path.name != "config.py" and "testing" not in path.parts and readers.search(path.read_text())]
    assert offenders == []


def test_one_pair_of_fhir_timeout_defaults():
    assert (DEFAULT_FHIR_CONNECT_TIMEOUT, DEFAULT_FHIR_READ_TIMEOUT) == (2.0, 4.0)
    guard = FhirAccessGuard.__init__.__kwdefaults__
    assert (guard["connect_timeout"], guard["read_timeout"]) == (DEFAULT_FHIR_CONNECT_TIMEOUT, DEFAULT_FHIR_READ_TIMEOUT)
    settings = Settings()
    assert (settings.fhir_connect_timeout, settings.fhir_read_timeout) == (2.0, 4.0)
    client_defaults = FhirClient.__dataclass_fields__
    assert client_defaults["connect_timeout"].default == DEFAULT_FHIR_CONNECT_TIMEOUT
    assert client_defaults["read_timeout"].default == DEFAULT_FHIR_READ_TIMEOUT


def test_knowledge_freshness_is_a_warning_never_unready():
    from datetime import date

    from cds_service.ops.web import knowledge_freshness

    assert knowledge_freshness(2026, date(2026, 3, 1)) == {"age_years": 0, "stale": False}
    assert knowledge_freshness(2027, date(2026, 12, 1)) == {"age_years": 0, "stale": False}  # next year's set early
    stale = knowledge_freshness(2024, date(2026, 1, 2))
    assert stale["age_years"] == 2 and stale["stale"] is True and "2024" in stale["warning"]


def test_log_format_switches_both_ways():
    import logging

    from cds_service.ops.logs import JsonFormatter, configure_logging

    root = logging.getLogger()
    configure_logging("INFO", "json")
    assert all(isinstance(h.formatter, JsonFormatter) for h in root.handlers)
    configure_logging("INFO", "text")
    assert not any(isinstance(h.formatter, JsonFormatter) for h in root.handlers)


def test_the_worker_default_follows_the_usable_cores(monkeypatch) -> None:
    """CDS_WORKERS unset: one worker per core the process may use (affinity, container CPU
    limit), at least 2 and at most 8; CDS_WORKERS still wins."""
    from cds_service import config

    for cores, limit, expected in ((1, None, 2), (2, None, 2), (4, None, 4), (64, None, 8), (64, 3.0, 3),
                                   (64, 1.5, 2), (16, 0.5, 2)):
        monkeypatch.setattr(config.os, "sched_getaffinity", lambda pid, cores=cores: set(range(cores)))
        monkeypatch.setattr(config, "_cgroup_cpu_limit", lambda limit=limit: limit)
        assert config.Settings.from_env({}).workers == expected, (cores, limit)
        assert config.Settings.from_env({"CDS_WORKERS": "5"}).workers == 5
