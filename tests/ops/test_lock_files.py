"""The lock files agree with pyproject.toml: every declared dependency is pinned, with hashes, to a
version its range allows, and nothing is pinned that no declared dependency needs. When this
fails after a dependency change, run ``requirements/refresh`` (see README, Packaging)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
LOCKS = {"runtime": ROOT / "requirements" / "runtime.lock", "test": ROOT / "requirements" / "test.lock"}
_PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s;\\]+)")


def declared(extra: bool) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = [Requirement(text) for text in project["dependencies"]]
    if extra:
        requirements += [Requirement(text) for text in project["optional-dependencies"]["test"]]
    return requirements


def pins(path: Path) -> dict[str, tuple[Version, list[str]]]:
    """name -> (version, hashes) from a pip-compile --generate-hashes file."""
    found: dict[str, tuple[Version, list[str]]] = {}
    current: str | None = None
    for line in path.read_text().splitlines():
        match = _PIN.match(line)
        if match:
            current = canonicalize_name(match.group(1))
            found[current] = (Version(match.group(2)), [])
        elif current and line.strip().startswith("--hash=sha256:"):
            found[current][1].append(line.strip().split(":", 1)[1].rstrip(" \\"))
        elif not line.startswith(" "):
            current = None
    return found


def via(path: Path) -> dict[str, str]:
    """name -> the "# via" text pip-compile wrote below its pin."""
    text = path.read_text()
    blocks = re.split(r"\n(?=[A-Za-z0-9_.\-]+==)", text)
    return {canonicalize_name(_PIN.match(block).group(1)): block for block in blocks if _PIN.match(block)}


@pytest.mark.parametrize("name", sorted(LOCKS))
def test_every_declared_dependency_is_pinned_within_its_range(name):
    locked = pins(LOCKS[name])
    assert locked, f"{LOCKS[name]} holds no pins"
    problems = []
    for requirement in declared(extra=name == "test"):
        key = canonicalize_name(requirement.name)
        if key not in locked:
            problems.append(f"{requirement} is declared in pyproject.toml but not pinned in {LOCKS[name].name}")
        elif not requirement.specifier.contains(locked[key][0], prereleases=True):
            problems.append(f"{requirement}: {LOCKS[name].name} pins {locked[key][0]}, outside the declared range")
    assert problems == [], "\n".join(problems) + "\nrun requirements/refresh"


@pytest.mark.parametrize("name", sorted(LOCKS))
def test_every_pin_has_hashes_and_is_needed(name):
    locked = pins(LOCKS[name])
    sources = via(LOCKS[name])
    for package, (version, hashes) in locked.items():
        assert hashes and all(re.fullmatch(r"[0-9a-f]{64}", h) for h in hashes), f"{package}=={version} has no hash"
        assert "# via" in sources[package], f"{package} is pinned but nothing needs it: run requirements/refresh"


def test_runtime_lock_is_the_test_lock_minus_test_tools():
    runtime, test = pins(LOCKS["runtime"]), pins(LOCKS["test"])
    assert set(runtime) <= set(test)
    differing = {name: (runtime[name][0], test[name][0]) for name in runtime if runtime[name][0] != test[name][0]}
    assert differing == {}, f"the same package is pinned differently: {differing}; run requirements/refresh"


def test_ci_and_image_install_from_the_locks():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "--require-hashes -r requirements/test.lock" in ci
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    assert "--require-hashes -r requirements/runtime.lock" in dockerfile
    assert "--no-deps" in dockerfile


def test_version_is_written_once_and_the_package_is_typed():
    from importlib.metadata import version

    import cds_service

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in pyproject["project"] and "version" in pyproject["project"]["dynamic"]
    assert pyproject["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "cds_service.__version__"}
    assert version("cds-service") == cds_service.__version__
    assert (ROOT / "cds_service" / "py.typed").is_file()
    assert "py.typed" in pyproject["tool"]["setuptools"]["package-data"]["cds_service"]
