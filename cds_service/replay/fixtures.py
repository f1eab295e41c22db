"""Fixture files: finding them, loading and checking them, and writing expectations back.

A fixture is one JSON object per file (the format is described in ``fhir_fixtures/README.md``)::

    {"description": "...", "service": "radioelement-order-sign",
     "request": {...CDS Hooks request...}, "fhir": [...resources...],
     "expect": {"status": 200, "decisions": [...]}}

A file whose top level is a FHIR ``Bundle`` is a patient record instead; :mod:`.bundle` turns it
into a request. Anything that is neither is reported, never silently skipped when named directly.
"""

from __future__ import annotations

import base64
import json
import os
import re
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from cds_service.config import Settings
from cds_service.knowledge import Knowledge, load_knowledge

ORDER_SIGN = "radioelement-order-sign"
ORDER_SELECT = "radioelement-order-select"
SERVICE_BY_HOOK = {"order-sign": ORDER_SIGN, "order-select": ORDER_SELECT}

FIXTURE_KEYS = {
    "description", "service", "request", "raw_body", "raw_body_base64", "raw_body_bytes",
    "content_type", "method", "fhir", "expect", "generated_from", "recorded_at",
    "recorded_fhir_server", "tags", "known_issue",
}
EXPECT_KEYS = {"status", "decisions", "error_contains", "card_count", "fhir_requests"}

# ${today}, ${today-30}, ${today+90}: dates relative to the day of the replay, so fixtures about
# "imaging within 90 days" or "a 77750 done last month" do not go stale as the calendar moves on.
DATE_TOKEN = re.compile(r"\$\{today(?:([+-])(\d{1,5}))?\}")


class FixtureError(ValueError):
    """The file cannot be replayed as it stands; the message says what to fix."""


@dataclass
class Fixture:
    path: Path
    name: str
    kind: str  # "fixture" or "bundle"
    description: str = ""
    service: str = ORDER_SIGN
    request: dict[str, Any] | None = None
    raw_body: bytes | None = None
    content_type: str = "application/json"
    method: str = "POST"
    fhir: list[dict[str, Any]] | None = None
    expect: dict[str, Any] | None = None
    known_issue: str | None = None
    document: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def category(self) -> str:
        """The folder the fixture lives in (relative to where it was found), for grouping."""
        parent = Path(self.name).parent.as_posix()
        return parent if parent not in ("", ".") else "(top)"


@dataclass
class Discovery:
    fixtures: list[Fixture]
    problems: list[tuple[str, str]]  # (name, message): files that could not be loaded
    skipped: list[str]  # JSON files in a folder that are neither fixture nor Bundle


def display_name(path: Path) -> str:
    try:
        relative = os.path.relpath(path)
    except ValueError:  # another drive on Windows
        return path.as_posix()
    return Path(relative).as_posix() if not relative.startswith("..") else path.as_posix()


def substitute_dates(value: Any, today: date) -> Any:
    """Replace ``${today±N}`` tokens in every string of a JSON value."""
    if isinstance(value, str):
        if "${" not in value:
            return value

        def replace(match: re.Match[str]) -> str:
            sign, days = match.group(1), int(match.group(2) or 0)
            return (today + timedelta(days=-days if sign == "-" else days)).isoformat()

        return DATE_TOKEN.sub(replace, value)
    if isinstance(value, list):
        return [substitute_dates(item, today) for item in value]
    if isinstance(value, dict):
        return {key: substitute_dates(item, today) for key, item in value.items()}
    return value


def _check_expect(expect: Any) -> dict[str, Any]:
    if not isinstance(expect, dict):
        raise FixtureError("expect must be an object")
    unknown = sorted(set(expect) - EXPECT_KEYS)
    if unknown:
        raise FixtureError(f"expect has unknown keys {unknown}; allowed: {sorted(EXPECT_KEYS)}")
    status = expect.get("status", 200)
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
        raise FixtureError(f"expect.status must be an HTTP status code, got {status!r}")
    if "error_contains" in expect and not isinstance(expect["error_contains"], str):
        raise FixtureError("expect.error_contains must be a string")
    if "card_count" in expect and (not isinstance(expect["card_count"], int) or expect["card_count"] < 0):
        raise FixtureError("expect.card_count must be a whole number")
    if "fhir_requests" in expect:
        count = expect["fhir_requests"]
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise FixtureError("expect.fhir_requests must be a whole number")
    if "decisions" in expect:
        decisions = expect["decisions"]
        if not isinstance(decisions, list):
            raise FixtureError("expect.decisions must be a list")
        seen: set[str] = set()
        for index, decision in enumerate(decisions):
            where = f"expect.decisions[{index}]"
            if not isinstance(decision, dict) or not isinstance(decision.get("order"), str):
                raise FixtureError(f"{where} must be an object with an 'order' such as 'ServiceRequest/sr-1'")
            if decision["order"] in seen:
                raise FixtureError(f"{where}: order {decision['order']!r} is expected twice")
            seen.add(decision["order"])
            for key in ("alternatives", "modifiers", "missingDocumentation", "warnings"):
                if key in decision and not isinstance(decision[key], list):
                    raise FixtureError(f"{where}.{key} must be a list")
            supply = decision.get("supply", [])
            if not isinstance(supply, list) or not all(isinstance(item, dict) and "code" in item for item in supply):
                raise FixtureError(f"{where}.supply must be a list of {{code, units}} objects")
    return {"status": status, **{key: value for key, value in expect.items() if key != "status"}}


def _raw_body(document: dict[str, Any]) -> bytes | None:
    given = [key for key in ("raw_body", "raw_body_base64", "raw_body_bytes") if key in document]
    if len(given) > 1:
        raise FixtureError(f"give only one of {given}")
    if not given:
        return None
    key = given[0]
    value = document[key]
    if key == "raw_body":
        if not isinstance(value, str):
            raise FixtureError("raw_body must be a string (the exact body to send)")
        return value.encode("utf-8")
    if key == "raw_body_base64":
        try:
            return base64.b64decode(value, validate=True)
        except (ValueError, TypeError):
            raise FixtureError("raw_body_base64 is not valid base64") from None
    if not isinstance(value, int) or isinstance(value, bool) or not 64 <= value <= 64 * 1024 * 1024:
        raise FixtureError("raw_body_bytes must be a size in bytes between 64 and 64 MiB")
    # A syntactically valid JSON object of exactly that many bytes (for the body-size limit).
    prefix, suffix = b'{"hook":"order-sign","padding":"', b'"}'
    return prefix + b"x" * (value - len(prefix) - len(suffix)) + suffix


def fixture_from_document(document: Any, path: Path, name: str, today: date) -> Fixture:
    """Check one fixture document and make a :class:`Fixture` (raises :class:`FixtureError`)."""
    if not isinstance(document, dict):
        raise FixtureError("a fixture file must hold one JSON object")
    unknown = sorted(key for key in set(document) - FIXTURE_KEYS if not key.startswith("_"))
    if unknown:
        raise FixtureError(f"unknown keys {unknown}; allowed: {sorted(FIXTURE_KEYS)} (or keys starting with '_')")
    raw = _raw_body(document)
    request = document.get("request")
    if raw is None and not isinstance(request, dict):
        raise FixtureError("a fixture needs a 'request' object (or a raw_body for hostile inputs)")
    if raw is not None and request is not None:
        raise FixtureError("give either 'request' or a raw body, not both")
    service = document.get("service")
    if service is None:
        hook = request.get("hook") if isinstance(request, dict) else None
        service = SERVICE_BY_HOOK.get(hook, ORDER_SIGN) if isinstance(hook, str) else ORDER_SIGN
    if not isinstance(service, str) or not service or "/" in service:
        raise FixtureError(f"service must be a service id such as {ORDER_SIGN!r}")
    fhir = document.get("fhir")
    if fhir is not None:
        if not isinstance(fhir, list) or not all(isinstance(r, dict) and r.get("resourceType") for r in fhir):
            raise FixtureError("fhir must be a list of FHIR resources (objects with a resourceType)")
        fhir = substitute_dates(fhir, today)
    method = document.get("method", "POST")
    if method not in {"POST", "GET", "PUT", "DELETE", "PATCH"}:
        raise FixtureError(f"method must be an HTTP method, got {method!r}")
    content_type = document.get("content_type", "application/json")
    if not isinstance(content_type, str):
        raise FixtureError("content_type must be a string")
    expect = _check_expect(document["expect"]) if "expect" in document else None
    description = document.get("description", "")
    known_issue = document.get("known_issue")
    if known_issue is not None and (not isinstance(known_issue, str) or not known_issue.strip()):
        raise FixtureError("known_issue must be a sentence naming the bug")
    if known_issue is not None and expect is None:
        raise FixtureError("known_issue needs an expect: the right answer the service does not give yet")
    return Fixture(
        path=path,
        name=name,
        kind="fixture",
        description=description if isinstance(description, str) else "",
        service=service,
        request=substitute_dates(request, today) if request is not None else None,
        raw_body=raw,
        content_type=content_type,
        method=method,
        fhir=fhir,
        expect=expect,
        known_issue=known_issue,
        document=document,
    )


def looks_like_bundle(document: Any) -> bool:
    return isinstance(document, dict) and document.get("resourceType") == "Bundle"


def looks_like_fixture(document: Any) -> bool:
    return isinstance(document, dict) and any(
        key in document for key in ("request", "raw_body", "raw_body_base64", "raw_body_bytes")
    )


def _json_files(root: Path) -> list[Path]:
    found = []
    for path in sorted(root.rglob("*.json")):
        relative = path.relative_to(root).parts
        if any(part.startswith(".") for part in relative):
            continue
        found.append(path)
    return found


def discover(
    paths: list[str | Path], today: date | None = None, service_for_bundles: str = ORDER_SIGN, all_orders: bool = False
) -> Discovery:
    """Every fixture and patient Bundle under ``paths`` (files or folders), in a stable order.

    A Bundle that already has a fixture generated from it in the same folder
    (``"generated_from": "<bundle file name>"``) is not replayed twice.
    """
    from cds_service.replay.bundle import bundle_fixture  # import here: bundle imports this module

    knowledge: Knowledge | None = None
    today = today or date.today()
    fixtures: list[Fixture] = []
    problems: list[tuple[str, str]] = []
    skipped: list[str] = []
    candidates: list[tuple[Path, bool]] = []  # (file, named directly)
    for given in paths:
        path = Path(given)
        if path.is_dir():
            candidates.extend((file, False) for file in _json_files(path))
        elif path.is_file():
            candidates.append((path, True))
        else:
            problems.append((str(given), "no such file or folder"))
    seen: set[Path] = set()
    loaded: list[tuple[Path, Any, bool]] = []
    for path, named in candidates:
        resolved = path.resolve()
        if resolved in seen:
            continue
        seen.add(resolved)
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            problems.append((display_name(path), f"cannot read the file as JSON: {error}"))
            continue
        loaded.append((path, document, named))
    generated = {
        (path.parent.resolve(), document["generated_from"])
        for path, document, _ in loaded
        if isinstance(document, dict) and isinstance(document.get("generated_from"), str)
    }
    for path, document, named in loaded:
        name = display_name(path)
        try:
            if looks_like_fixture(document):
                fixtures.append(fixture_from_document(document, path, name, today))
            elif looks_like_bundle(document):
                if not named and (path.parent.resolve(), path.name) in generated:
                    continue
                if knowledge is None:  # read once per discovery, and only when there is a Bundle
                    knowledge = load_knowledge(Settings.from_env().knowledge_dir)
                fixtures.append(bundle_fixture(document, path, name, service_for_bundles, all_orders, knowledge))
            elif named:
                problems.append((name, "neither a fixture (no 'request') nor a FHIR Bundle"))
            else:
                skipped.append(name)
        except FixtureError as error:
            problems.append((name, str(error)))
    return Discovery(fixtures, problems, skipped)


# -- writing expectations -----------------------------------------------------------------------

def expectation_from(status: int, body: Any) -> dict[str, Any]:
    """The expectation that the given response would satisfy, in the contract's full shape."""
    expect: dict[str, Any] = {"status": status}
    if status != 200:
        return expect
    decisions = []
    for decision in decisions_of(body):
        written: dict[str, Any] = {"order": decision.get("order")}
        if decision.get("orderedCode") is not None:
            written["orderedCode"] = decision["orderedCode"]
        written["recommendedCode"] = decision.get("recommendedCode")
        for key in ("alternatives", "modifiers"):
            written[key] = list(decision.get(key) or [])
        written["supply"] = [
            {"code": item.get("code"), "units": item.get("units")} for item in decision.get("supply") or []
        ]
        for key in ("missingDocumentation", "warnings"):
            written[key] = list(decision.get(key) or [])
        decisions.append(written)
    expect["decisions"] = decisions
    return expect


def decisions_of(body: Any) -> list[dict[str, Any]]:
    """``extension["cds-service.decisions"]`` of a response body ([] when absent)."""
    if not isinstance(body, dict):
        return []
    extension = body.get("extension")
    if not isinstance(extension, dict):
        return []
    decisions = extension.get("cds-service.decisions")
    return [item for item in decisions if isinstance(item, dict)] if isinstance(decisions, list) else []


def write_json(path: Path, document: dict[str, Any]) -> None:
    """Write atomically (a crash never leaves half a fixture), two-space indented."""
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def write_expectation(fixture: Fixture, expect: dict[str, Any]) -> Path:
    """Store ``expect`` in the fixture's file, or for a patient Bundle in a new fixture beside it.

    The original document is rewritten with only its ``expect`` replaced, so ``${today}`` tokens
    and comments (keys starting with ``_``) survive.
    """
    if fixture.kind == "bundle":
        assert fixture.request is not None
        target = fixture.path.with_name(f"{fixture.path.stem}.replay.json")
        document = {
            "description": fixture.description,
            "generated_from": fixture.path.name,
            "service": fixture.service,
            "request": fixture.request,
            "expect": expect,
        }
        write_json(target, document)
        return target
    document = dict(fixture.document)
    document["expect"] = expect
    write_json(fixture.path, document)
    return fixture.path
