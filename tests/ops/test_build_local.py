"""docker/build-local.sh without building anything: its options and the podman settings it writes."""

from __future__ import annotations

import re
import resource
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "docker" / "build-local.sh"


def run(*args: str, build_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, timeout=30,
                          env={"PATH": "/usr/bin:/bin:/usr/sbin:/sbin", "CDS_BUILD_DIR": str(build_dir)})


def test_containers_conf_pins_runc_and_stays_within_the_hard_limits(tmp_path):
    result = run("--print-conf", build_dir=tmp_path)
    assert result.returncode == 0, result.stderr
    conf = Path(result.stdout.strip())
    assert conf == tmp_path / "containers.conf"
    text = conf.read_text()
    assert re.search(r'^runtime = "runc"$', text, re.M)
    nofile = int(re.search(r'"nofile=(\d+):(\d+)"', text).group(1))
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    assert nofile <= (hard if hard != resource.RLIM_INFINITY else 1 << 20)
    assert re.search(r'"nproc=\d+:\d+"', text)


def test_unknown_option_is_refused(tmp_path):
    result = run("--bogus", build_dir=tmp_path)
    assert result.returncode == 2 and "unknown option --bogus" in result.stderr


def test_help_names_every_option(tmp_path):
    text = run("--help", build_dir=tmp_path).stdout
    for option in ("--compose", "--no-test", "--print-conf", "CDS_IMAGE", "DEBIAN_MIRROR"):
        assert option in text
    assert "set -euo" not in text
