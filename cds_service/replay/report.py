"""What a replay prints and writes: progress bar, per-fixture lines, summary table, JSON, JUnit."""

from __future__ import annotations

import json
import math
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

from cds_service.replay.runner import Result

OUTCOMES = ("passed", "failed", "known-issue", "error", "unchecked", "written")


class Progress:
    """A one-line progress bar on stderr; does nothing when stderr is not a terminal."""

    def __init__(self, total: int, enabled: bool | None = None, stream: TextIO | None = None, width: int = 28) -> None:
        self.stream = stream or sys.stderr
        self.total = max(total, 1)
        self.width = width
        self.enabled = (self.stream.isatty() if hasattr(self.stream, "isatty") else False) if enabled is None else enabled
        self.failed = 0
        self._shown = False

    def update(self, done: int, name: str, failed: int = 0) -> None:
        if not self.enabled:
            return
        filled = int(self.width * done / self.total)
        bar = "#" * filled + "-" * (self.width - filled)
        label = name if len(name) <= 40 else "…" + name[-39:]
        failures = f" {failed} failed" if failed else ""
        self.stream.write(f"\r\x1b[2K[{bar}] {done}/{self.total}{failures} {label}")
        self.stream.flush()
        self._shown = True

    def clear(self) -> None:
        if self.enabled and self._shown:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()
            self._shown = False


def percentile(values: list[float], share: float) -> float | None:
    """Nearest-rank percentile (share in 0..100), None without values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(share / 100 * len(ordered)))
    return ordered[rank - 1]


def describe_decision(decision: dict[str, Any]) -> str:
    supply = ", ".join(f"{item.get('code')} × {item.get('units')}" for item in decision.get("supply") or [])
    parts = [
        f"recommended {decision.get('recommendedCode')}",
        f"ordered {decision.get('orderedCode') or '-'}",
        f"alternatives {', '.join(decision.get('alternatives') or []) or '-'}",
        f"modifiers {', '.join(decision.get('modifiers') or []) or '-'}",
        f"supply {supply or '-'}",
        f"missing {', '.join(decision.get('missingDocumentation') or []) or '-'}",
        f"warnings {', '.join(decision.get('warnings') or []) or '-'}",
    ]
    return f"{decision.get('order')}: " + "; ".join(parts)


def describe_cards(result: Result) -> list[str]:
    lines = []
    for card in result.cards:
        lines.append(f"    [{card.get('indicator', '?')}] {card.get('summary', '')}")
        for suggestion in card.get("suggestions") or []:
            if isinstance(suggestion, dict):
                lines.append(f"        suggestion: {suggestion.get('label', '')}")
    if not lines:
        lines.append("    (no cards)")
    for decision in result.decisions:
        lines.append(f"    decision {describe_decision(decision)}")
    return lines


def result_lines(result: Result, show_cards: bool = False) -> list[str]:
    """The lines printed for one fixture (nothing for a quiet pass)."""
    fixture = result.fixture
    timing = f" ({result.latency_ms:.0f} ms)" if result.latency_ms is not None else ""
    status = f" HTTP {result.http_status}" if result.http_status is not None else ""
    lines: list[str] = []
    if result.outcome == "failed":
        lines.append(f"FAIL {fixture.name}{timing}")
        if fixture.description:
            lines.append(f"     {fixture.description}")
        lines.extend(f"  - {fixture.name} · {difference.message()}" for difference in result.differences)
        if result.error:
            lines.append(f"  - {fixture.name}: {result.error}")
    elif result.outcome == "known-issue":
        lines.append(f"KNOWN ISSUE {fixture.name}: {fixture.known_issue}")
        lines.extend(f"  - {fixture.name} · {difference.message()}" for difference in result.differences)
    elif result.outcome == "passed" and fixture.known_issue:
        lines.append(f"FIXED? {fixture.name} now passes: remove its known_issue note ({fixture.known_issue})")
    elif result.outcome == "error":
        lines.append(f"ERROR {fixture.name}: {result.error}")
    elif result.outcome in ("unchecked", "written"):
        verb = "RECORDED" if result.outcome == "written" else "RAN"
        lines.append(f"{verb} {fixture.name} →{status}{timing}: {fixture.description or 'no description'}")
        lines.extend(f"    note: {note}" for note in fixture.notes)
        if result.http_status is not None and result.http_status != 200:
            error = result.body.get("error") if isinstance(result.body, dict) else None
            lines.append(f"    error: {error or '(no message)'}")
        else:
            lines.extend(describe_cards(result))
        if result.written_to:
            lines.append(f"    expectation written to {result.written_to}")
    elif show_cards:
        lines.append(f"ok   {fixture.name}{timing}")
        lines.extend(describe_cards(result))
    return lines


def counts(results: list[Result]) -> dict[str, int]:
    tally = Counter(result.outcome for result in results)
    return {outcome: tally.get(outcome, 0) for outcome in OUTCOMES}


def code_counts(results: list[Result]) -> Counter[str]:
    tally: Counter[str] = Counter()
    for result in results:
        for decision in result.decisions:
            tally[str(decision.get("recommendedCode"))] += 1
    return tally


def summary_table(results: list[Result], target: str, elapsed_s: float) -> str:
    tally = counts(results)
    latencies = [result.latency_ms for result in results if result.latency_ms is not None]
    p50, p95 = percentile(latencies, 50), percentile(latencies, 95)
    rows = [("fixtures", str(len(results)))]
    rows += [(outcome, str(tally[outcome])) for outcome in OUTCOMES if tally[outcome] or outcome in ("passed", "failed")]
    rows.append(("latency p50", f"{p50:.1f} ms" if p50 is not None else "-"))
    rows.append(("latency p95", f"{p95:.1f} ms" if p95 is not None else "-"))
    rows.append(("wall time", f"{elapsed_s:.2f} s"))
    width = max(len(label) for label, _ in rows)
    lines = [f"replay summary ({target})", "-" * (width + 14)]
    lines += [f"{label:<{width}}  {value:>10}" for label, value in rows]
    codes = code_counts(results)
    if codes:
        lines += ["", f"{'recommended code':<16}  {'decisions':>9}", "-" * 27]
        lines += [f"{code:<16}  {count:>9}" for code, count in sorted(codes.items())]
    return "\n".join(lines)


def json_report(results: list[Result], target: str, elapsed_s: float) -> dict[str, Any]:
    latencies = [result.latency_ms for result in results if result.latency_ms is not None]
    return {
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "target": target,
        "summary": {
            "fixtures": len(results),
            **counts(results),
            "latency_ms": {"p50": percentile(latencies, 50), "p95": percentile(latencies, 95)},
            "wall_time_s": round(elapsed_s, 3),
            "recommended_codes": dict(sorted(code_counts(results).items())),
        },
        "fixtures": [
            {
                "name": result.fixture.name,
                "kind": result.fixture.kind,
                "service": result.fixture.service,
                "description": result.fixture.description,
                "outcome": result.outcome,
                "http_status": result.http_status,
                "latency_ms": round(result.latency_ms, 2) if result.latency_ms is not None else None,
                "fhir_requests": result.fhir_requests,
                "differences": [difference.as_dict() for difference in result.differences],
                "error": result.error,
                "decisions": result.decisions,
            }
            for result in results
        ],
    }


def junit_xml(results: list[Result], target: str, elapsed_s: float) -> str:
    tally = counts(results)
    suites = ET.Element("testsuites", name="cds-service replay", tests=str(len(results)),
                        failures=str(tally["failed"]), errors=str(tally["error"]), time=f"{elapsed_s:.3f}")
    by_category: dict[str, list[Result]] = {}
    for result in results:
        by_category.setdefault(result.fixture.category, []).append(result)
    for category, members in by_category.items():
        inner = counts(members)
        suite = ET.SubElement(
            suites, "testsuite", name=category, tests=str(len(members)), failures=str(inner["failed"]),
            errors=str(inner["error"]), skipped=str(inner["unchecked"] + inner["known-issue"]),
            time=f"{sum((r.latency_ms or 0) for r in members) / 1000:.3f}",
        )
        ET.SubElement(ET.SubElement(suite, "properties"), "property", name="target", value=target)
        for result in members:
            case = ET.SubElement(
                suite, "testcase", classname="replay." + category.strip("/").replace("/", "."),
                name=Path(result.fixture.name).name, file=result.fixture.name,
                time=f"{(result.latency_ms or 0) / 1000:.3f}",
            )
            if result.outcome == "failed":
                messages = [f"{result.fixture.name} · {d.message()}" for d in result.differences]
                messages += [result.error] if result.error else []
                failure = ET.SubElement(case, "failure", message=messages[0][:500] if messages else "failed", type="mismatch")
                failure.text = "\n".join(messages)
            elif result.outcome == "error":
                ET.SubElement(case, "error", message=(result.error or "")[:500], type="error").text = result.error
            elif result.outcome == "unchecked":
                ET.SubElement(case, "skipped", message="no expectation in the fixture")
            elif result.outcome == "known-issue":
                ET.SubElement(case, "skipped", message=f"known issue: {result.fixture.known_issue}"[:500])
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


def write_text(path: str, text: str) -> None:
    target = Path(path)
    if target.parent and not target.parent.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")


def write_json_report(path: str, report: dict[str, Any]) -> None:
    write_text(path, json.dumps(report, indent=2, ensure_ascii=False) + "\n")
