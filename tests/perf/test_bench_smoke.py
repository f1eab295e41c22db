"""bench/run.py --quick runs end to end from this checkout and prints its table and verdicts.

No timing is asserted (the machine is shared); what must hold is that both servers start, the
load generator talks to them in both scenarios and in the open loop, every request succeeds,
the service makes no FHIR request for orders that are not therapy, and every target of issue 14
gets a verdict line.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_benchmark_prints_the_table_ratios_and_targets(tmp_path: Path) -> None:
    raw = tmp_path / "results.json"
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--json", str(raw)],
                            capture_output=True, text=True, timeout=300, cwd=tmp_path)
    out = result.stdout
    assert result.returncode == 0, result.stderr[-3000:] + out[-3000:]

    number = r"\d+(?:\.\d+)?"
    for scenario in ("not-therapy", "therapy"):
        for server in ("floor", "service"):
            assert re.search(rf"^{scenario}\s+{server}\s+{number}\s+{number}\s+{number}\s+{number}\s+0\s+\d+%\s+\d+%$",
                             out, re.M), f"no error-free {scenario}/{server} row:\n{out}"
        assert re.search(rf"^ratio service/floor, {scenario}: throughput {number}, p50 {number}x, p99 {number}x$",
                         out, re.M), out
    assert re.search(r"^FHIR requests the service made to the stand-in: not-therapy 0, therapy 0$", out, re.M), out
    assert re.search(rf"^In process \(bench/profile_sign.py --distinct \d+, each body once\): median {number} ms", out, re.M)
    assert re.search(rf"^Open loop \(therapy bodies at {number} req/s, .*, 0 errors$", out, re.M), out
    for size in (100, 1000):
        assert re.search(rf"^\s+{size}\s+{number}\s+{number}\s+{number}\s+{number}\s+{number}\s+\d+$", out, re.M), \
            f"no chart row for {size} resources (server time must come from the audit trail):\n{out}"
    for server in ("service", "floor"):
        assert re.search(rf"^{server}\s+{number}\s+{number}\s+1\s+3\s+{number}\s+{number}\s+{number}$", out, re.M), out
    targets = ("1 not-therapy throughput >= 50% of floor", "1 not-therapy p99 <= 2x floor p99",
               "1 not-therapy makes no FHIR request", "2 therapy throughput >= 25% of floor",
               "2 therapy p99 <= 3x own p50 at 16 clients", "2 therapy in-process median <= 2 ms",
               "3 open-loop p99 <= 4x in-process median", "4 1,000-resource prefetch < 25 ms server time",
               "5 cold start < 1.5 s", "5 memory <= floor + 80 MB PSS")
    for target in targets:
        assert re.search(rf"^(PASS|FAIL) {re.escape(target)}: ", out, re.M), f"no verdict for {target!r}:\n{out}"
    assert "PASS 1 not-therapy makes no FHIR request: 0 requests to the stand-in" in out
    assert re.search(r"^SKIP 4 10,000-resource prefetch", out, re.M)  # not in quick mode
    assert "PASS no failed requests: 0 errors" in out

    data = json.loads(raw.read_text())
    for scenario in ("not-therapy", "therapy"):
        run = data["concurrent"][f"{scenario}/service"]
        assert run["statuses"] == {"200": run["requests"]} and run["requests"] > 0
    assert data["fhir_requests"] == {"not-therapy": 0, "therapy": 0}
    assert data["open_loop"]["errors"] == 0 and data["open_loop"]["requests"] > 0
    assert data["in_process"]["calls"] >= 20 and data["in_process"]["median_ms"] > 0


def test_check_exits_1_on_a_failed_target(tmp_path: Path) -> None:
    """--check turns any FAIL into exit status 1 (the report itself is the same)."""
    sys.path.insert(0, str(ROOT / "bench"))
    import run  # noqa: E402

    failed = run.report_verdicts([("a target", True, "fine"), ("another", False, "missed")], print)
    assert failed is True
    assert run.report_verdicts([("a target", True, "fine"), ("skipped", None, "n/a")], print) is False
