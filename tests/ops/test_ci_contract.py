"""CI wiring: .ci/run runs the README's test command and PostgreSQL tests never skip silently in CI."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cds_service.testing import postgres

ROOT = Path(__file__).resolve().parents[2]


def test_ci_run_ends_with_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    command = 'python3 -m venv .venv && .venv/bin/pip install --require-hashes -r requirements/test.lock && .venv/bin/pip install --no-deps -e . && .venv/bin/python -m mypy cds_service && .venv/bin/python -m pytest'
    assert command in readme
    lines = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line.strip()]
    assert lines[-1] == command
    script = "\n".join(lines)
    for flag in ("CDS_TEST_REQUIRE_POSTGRES", "CDS_TEST_REQUIRE_BROWSER", "CDS_TEST_REQUIRE_CONTAINERS"):
        assert re.search(rf"^export {flag}=1$", script, re.M), flag
    assert "apt-get install -y -q postgresql" in script


def test_required_postgres_fails_loudly_and_optional_skips():
    unreachable = "postgresql://postgres@127.0.0.1:1/test"
    with pytest.raises(pytest.fail.Exception, match="required"):
        postgres.skip_or_fail_unless_reachable(unreachable, is_required=True)
    with pytest.raises(pytest.skip.Exception):
        postgres.skip_or_fail_unless_reachable(unreachable, is_required=False)


@pytest.mark.parametrize("env, expected", [
    ({}, False), ({"CI": "true"}, True), ({"CI": "false"}, False), ({"CDS_TEST_REQUIRE_POSTGRES": "1"}, True),
])
def test_required_in_ci(env, expected):
    assert postgres.required(env) is expected


def test_postgres_urls():
    url = postgres.sqlalchemy_url("postgresql://u@h:5432/test", database="d1", schema="s1")
    assert url == "postgresql+psycopg://u@h:5432/d1?options=-csearch_path%3Ds1"
    assert postgres.libpq_url("postgresql+psycopg://u:p@h/d") == "postgresql://u:p@h/d"


def test_readme_configuration_names_every_variable_the_code_reads():
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Configuration"):readme.index("### Production checklist")]
    documented = set(re.findall(r"`((?:CDS|DATABASE|PROMETHEUS)_[A-Z_]+)`", section))
    used: set[str] = set()
    for path in (ROOT / "cds_service").rglob("*.py"):
        used |= set(re.findall(r"[\"']((?:CDS_|DATABASE_URL|PROMETHEUS_MULTIPROC_DIR)[A-Z_]*)[\"']", path.read_text()))
    used -= {"CDS_SETTINGS"}  # a Flask config key, not an environment variable
    assert used, "found no variables: the pattern is broken"
    assert sorted(used - documented) == []


@pytest.mark.parametrize("env, expected", [
    ({}, False), ({"CI": "true"}, True), ({"CI": "1"}, True), ({"CI": "false"}, False),
    ({"CDS_TEST_REQUIRE_BROWSER": "1"}, True), ({"CDS_TEST_REQUIRE_BROWSER": "0"}, False),
    ({"CDS_TEST_REQUIRE_POSTGRES": "1"}, False),
])
def test_browser_tests_are_required_in_ci(env, expected):
    """Browser, container and tool-dependent tests fail instead of skipping in CI (CI=true) or
    when their own flag is set; another suite's flag does not count."""
    from cds_service.testing.required import must_run

    assert must_run("CDS_TEST_REQUIRE_BROWSER", env=env) is expected


def test_browser_fixture_fails_in_ci_when_chromium_is_missing(monkeypatch):
    import tests.browser.conftest as browser

    monkeypatch.setattr(browser, "CHROMIUM", "/nonexistent/chromium")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="required here"):
        next(browser.browser.__wrapped__())
    monkeypatch.setenv("CI", "false")
    monkeypatch.delenv("CDS_TEST_REQUIRE_BROWSER", raising=False)
    with pytest.raises(pytest.skip.Exception):
        next(browser.browser.__wrapped__())
