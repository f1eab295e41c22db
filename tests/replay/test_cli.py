"""The replay command end to end, in process: diffs, exit status, reports, progress."""

from __future__ import annotations

import copy
import io
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from cds_service.cli import main
from cds_service.replay.report import Progress, percentile

LIBRARY = Path(__file__).resolve().parents[2] / "fhir_fixtures"


def library_fixture_with_decisions() -> tuple[Path, dict]:
    """The first library fixture (in a stable order) that expects at least one decision."""
    for path in sorted(LIBRARY.rglob("*.json")):
        document = json.loads(path.read_text())
        decisions = (document.get("expect") or {}).get("decisions") if isinstance(document, dict) else None
        if decisions and document.get("request"):
            return path, document
    raise AssertionError("the fixture library has no fixture with an expected decision")


@pytest.fixture
def changed(tmp_path: Path) -> tuple[Path, dict, dict]:
    """A copy of a passing library fixture whose expectation was changed in two fields."""
    source, document = library_fixture_with_decisions()
    original = copy.deepcopy(document["expect"]["decisions"][0])
    decision = document["expect"]["decisions"][0]
    decision["recommendedCode"] = "79999" if decision["recommendedCode"] != "79999" else "79101"
    decision["missingDocumentation"] = sorted(set(decision.get("missingDocumentation", [])) ^ {"staging"})
    (tmp_path / "cases").mkdir()
    target = tmp_path / "cases" / source.name
    target.write_text(json.dumps(document))
    (tmp_path / "cases" / "ok.json").write_text(source.read_text())
    return target, original, decision


def test_a_changed_expectation_fails_with_a_diff_naming_fixture_order_and_field(changed, capsys):
    target, original, decision = changed
    assert main(["replay", str(target.parent), "--no-progress"]) == 1
    out = capsys.readouterr().out
    order = decision["order"]
    assert f"FAIL {target}" in out
    assert f"{target} · {order} · recommendedCode: expected '{decision['recommendedCode']}', got '{original['recommendedCode']}'" in out
    assert f"{target} · {order} · missingDocumentation:" in out
    assert "'staging'" in out.split("missingDocumentation:")[1].splitlines()[0]
    summary = out[out.index("replay summary"):]
    assert [line.split() for line in summary.splitlines() if line.startswith(("passed", "failed"))] == [
        ["passed", "1"], ["failed", "1"]]


def test_json_and_junit_reports_are_well_formed_and_agree(changed, tmp_path, capsys):
    target, _, decision = changed
    json_path, junit_path = tmp_path / "out" / "replay.json", tmp_path / "out" / "replay.xml"
    assert main(["replay", str(target.parent), "--no-progress", "--json", str(json_path), "--junit", str(junit_path)]) == 1
    capsys.readouterr()

    report = json.loads(json_path.read_text())
    assert report["summary"]["fixtures"] == 2 and report["summary"]["passed"] == 1 and report["summary"]["failed"] == 1
    assert report["summary"]["latency_ms"]["p50"] > 0
    assert sum(report["summary"]["recommended_codes"].values()) >= 2
    failed = next(f for f in report["fixtures"] if f["outcome"] == "failed")
    assert failed["name"] == str(target)
    fields = {(d["order"], d["field"]) for d in failed["differences"]}
    assert {(decision["order"], "recommendedCode"), (decision["order"], "missingDocumentation")} <= fields

    root = ET.parse(junit_path).getroot()
    assert root.tag == "testsuites" and root.get("tests") == "2" and root.get("failures") == "1"
    cases = root.findall("./testsuite/testcase")
    assert len(cases) == 2
    [failure] = root.findall("./testsuite/testcase/failure")
    assert "recommendedCode" in failure.text and decision["order"] in failure.text


def test_fixture_that_cannot_be_loaded_makes_the_run_fail(tmp_path, capsys):
    (tmp_path / "typo.json").write_text(json.dumps({"request": {}, "expected": {"status": 200}}))
    (tmp_path / "fine.json").write_text(json.dumps({"raw_body": "{", "expect": {"status": 400}}))
    assert main(["replay", str(tmp_path), "--no-progress"]) == 1
    assert "unknown keys ['expected']" in capsys.readouterr().out


def test_no_fixtures_is_a_usage_error(tmp_path, capsys):
    assert main(["replay", str(tmp_path), "--no-progress"]) == 2
    assert "no fixtures found" in capsys.readouterr().err


def test_progress_bar_only_on_a_terminal():
    quiet = io.StringIO()
    progress = Progress(3, stream=quiet)  # StringIO is not a TTY
    progress.update(1, "a.json")
    assert quiet.getvalue() == ""
    shown = io.StringIO()
    progress = Progress(4, enabled=True, stream=shown)
    progress.update(2, "engine/ra223.json", failed=1)
    assert "[##############--------------] 2/4 1 failed engine/ra223.json" in shown.getvalue()
    progress.clear()
    assert shown.getvalue().endswith("\r\x1b[2K")


def test_percentile_is_nearest_rank():
    assert percentile([], 50) is None
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0 and percentile(values, 95) == 95.0
    assert percentile([7.0], 95) == 7.0


def test_known_issue_is_reported_not_failed_and_a_fix_is_announced(changed, capsys):
    target, original, decision = changed
    document = json.loads(target.read_text())
    document["known_issue"] = "the engine answers differently (test)"
    target.write_text(json.dumps(document))
    assert main(["replay", str(target), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert f"KNOWN ISSUE {target}: the engine answers differently (test)" in out
    assert "recommendedCode" in out
    assert [line.split() for line in out.splitlines() if line.startswith("known-issue")] == [["known-issue", "1"]]

    document["expect"]["decisions"][0] = original  # the right answer is now given: say so
    target.write_text(json.dumps(document))
    assert main(["replay", str(target), "--no-progress"]) == 0
    assert f"FIXED? {target} now passes" in capsys.readouterr().out


def test_write_expected_leaves_known_issues_and_passing_fixtures_untouched(changed, capsys):
    target, _, _ = changed
    ok = target.parent / "ok.json"
    before_ok = ok.read_text()
    document = json.loads(target.read_text())
    document["known_issue"] = "kept as written"
    target.write_text(json.dumps(document))
    before = target.read_text()
    assert main(["replay", str(target.parent), "--no-progress", "--write-expected", "--overwrite"]) == 0
    assert target.read_text() == before and ok.read_text() == before_ok
    capsys.readouterr()


def test_in_process_replay_runs_dev_rules_whatever_the_environment_says(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("CDS_PROFILE", "production")
    monkeypatch.setenv("CDS_AUTH", "on")
    fallback = LIBRARY / "fallback" / "ra223-no-prefetch.json"
    report = tmp_path / "r.json"
    assert main(["replay", str(fallback), "--no-progress", "--json", str(report)]) == 0
    [result] = json.loads(report.read_text())["fixtures"]
    assert result["outcome"] == "passed" and result["fhir_requests"] > 0
    capsys.readouterr()
