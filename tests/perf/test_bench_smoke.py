"""bench/run.py --quick runs end to end from this checkout and prints its table and verdicts.

No timing is asserted (the machine is shared); what must hold is that both servers start, the
load generator talks to them, every request succeeds and every section of the report is there.
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
    for scenario in ("order-sign", "order-select"):
        for server in ("floor", "service"):
            assert re.search(rf"^{scenario}\s+{server}\s+{number}\s+{number}\s+{number}\s+{number}\s+0\s+\d+%\s+\d+%$", out, re.M), \
                f"no error-free {scenario}/{server} row:\n{out}"
        assert re.search(rf"^ratio service/floor, {scenario}: throughput {number}, p50 {number}x, p99 {number}x$",
                         out, re.M), out
    for size in (100, 1000):
        assert re.search(rf"^\s+{size}\s+{number}\s+{number}\s+{number}\s+{number}\s+{number}\s+{number}\s+\d+$",
                         out, re.M), f"no chart row for {size} resources (server time must come from the audit trail):\n{out}"
    for server in ("service", "floor", "strict"):
        assert re.search(rf"^{server}\s+{number}\s+{number}\s+1\s+3\s+{number}\s+{number}$", out, re.M), out  # master + 2 workers
    for target in ("order-sign p99 <= 2x floor p99", "order-sign throughput >= 50% of floor",
                   "1,000-resource prefetch < 100 ms server time", "cold start < 2 s"):
        assert re.search(rf"^(PASS|FAIL) {re.escape(target)}: ", out, re.M), f"no verdict for {target!r}:\n{out}"
    assert re.search(r"^SKIP 10,000-resource prefetch", out, re.M)  # not in quick mode
    assert "PASS no failed requests: 0 errors" in out

    data = json.loads(raw.read_text())
    assert data["concurrent"]["order-sign/service"]["statuses"] == {"200": data["concurrent"]["order-sign/service"]["requests"]}
    assert data["charts"]["1000/strict"]["server_p50_ms"] is not None
