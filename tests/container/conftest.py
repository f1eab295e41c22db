"""Smoke tests of the built image: the session builds it once with docker/build-local.sh (base
image cached between runs, image layers cached by podman), then the tests run real containers.

Without podman/podman-compose/debootstrap the tests skip, except where they are required (CI,
``CDS_TEST_REQUIRE_CONTAINERS=1``, which .ci/run sets after installing the tools): there they fail.
``-m "not container"`` leaves them out of a quick local run."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from tests.container.podman import BUILD_SCRIPT, ROOT, SERVICE_IMAGE, missing_tools, required


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "container: builds and runs the container image (podman)")
    config.addinivalue_line("markers", "slow: takes more than a few seconds; still runs in CI")


@pytest.fixture(scope="session")
def built_images() -> None:
    """Build the service image and the compose stand-ins (cached), or skip/fail without the tools."""
    missing = missing_tools()
    if missing:
        message = f"container tools missing: {', '.join(missing)} (apt-get install podman buildah runc debootstrap podman-compose)"
        if required():
            pytest.fail(message + "; required in CI")
        pytest.skip(message)
    if os.environ.get("CDS_CONTAINER_BUILT") == "1":  # docker/build-local.sh has just built them
        return
    started = time.monotonic()
    result = subprocess.run([str(BUILD_SCRIPT), "--compose", "--no-test"], cwd=ROOT,
                            env={**os.environ, "CDS_IMAGE": SERVICE_IMAGE},
                            capture_output=True, text=True, timeout=1200)
    if result.returncode != 0:
        pytest.fail(f"docker/build-local.sh failed after {time.monotonic() - started:.0f} s:\n"
                    f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    timings = [line for line in result.stderr.splitlines() if " took " in line or " MB" in line]
    print("\n".join(timings))
