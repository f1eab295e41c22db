"""Real-browser fixtures: Debian's Chromium driven by Playwright, against the real served service.

Playwright's own browser download is never used (these machines cannot fetch it, and CI must
test what a user runs): the system binary is passed as ``executable_path``. Every request the
page makes outside the service is blocked and recorded, so a test can assert that a page needs
nothing from another origin. Screenshots go to ``CDS_TEST_ARTIFACTS`` (default
``test-artifacts/`` in the repository, ignored by git).
"""

from __future__ import annotations

import os
import shutil
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import urlsplit

import pytest

from cds_service.testing.required import must_run
from tests.ops.live import free_port, running

CHROMIUM = os.environ.get("CDS_TEST_CHROMIUM", "/usr/bin/chromium")
# As the machine's own probe starts it: no sandbox as root, and no background traffic that a
# closed network would refuse.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
ARTIFACTS = Path(os.environ.get("CDS_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "test-artifacts"))


def _browser_required() -> bool:
    # In CI the browser tests must run, never skip: .ci/run installs Chromium and sets the flag.
    return must_run("CDS_TEST_REQUIRE_BROWSER")


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    reason = None
    if shutil.which(CHROMIUM) is None and not Path(CHROMIUM).exists():
        reason = f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        reason = reason or "playwright is not installed (pip install -e '.[test]')"
    if reason:
        if _browser_required():
            pytest.fail(f"{reason}; the browser tests are required here (CI or CDS_TEST_REQUIRE_BROWSER)")
        pytest.skip(reason)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


class ServedPage:
    """A Playwright page bound to one served instance, recording what it tried to fetch elsewhere."""

    def __init__(self, page: Any, base_url: str) -> None:
        self.page = page
        self.base_url = base_url
        self.outside_requests: list[str] = []
        origin = urlsplit(base_url).netloc

        def guard(route: Any) -> None:
            if urlsplit(route.request.url).netloc == origin:
                route.continue_()
            else:
                self.outside_requests.append(route.request.url)
                route.abort()

        page.route("**/*", guard)

    def goto(self, path: str) -> Any:
        return self.page.goto(self.base_url + path)

    def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture
def serve_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., str]]:
    """Start ``cds-service serve`` (gunicorn) with extra environment; returns its base URL."""
    with ExitStack() as stack:

        def start(workers: int = 1, **env_overrides: str) -> str:
            folder = tmp_path_factory.mktemp("served")
            port = free_port()
            env = {**os.environ, "CDS_AUTH": "off", "CDS_SQLITE_PATH": str(folder / "cds.sqlite3"),
                   "TMPDIR": str(folder), "CDS_LOG_LEVEL": "WARNING"}
            env.pop("DATABASE_URL", None)
            env.update(env_overrides)
            base = f"http://127.0.0.1:{port}"
            command = [sys.executable, "-m", "cds_service.cli", "serve", "--host", "127.0.0.1",
                       "--port", str(port), "--workers", str(workers)]
            stack.enter_context(running(command, env, base, folder / "server.log"))
            return base

        yield start


@pytest.fixture
def open_page(browser: Any) -> Iterator[Callable[..., ServedPage]]:
    """Open a fresh browser context on a served instance: ``open_page(base_url, locale='en-US')``."""
    contexts: list[Any] = []

    def make(base_url: str, **context_options: Any) -> ServedPage:
        context = browser.new_context(**context_options)
        contexts.append(context)
        return ServedPage(context.new_page(), base_url)

    yield make
    for context in contexts:
        context.close()
