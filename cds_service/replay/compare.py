"""Compare a response with a fixture's expectation, field by field.

Decisions are matched by ``order`` (their order in the list does not matter). Within a decision:
``orderedCode`` and ``recommendedCode`` are compared as values; ``alternatives``, ``modifiers``,
``missingDocumentation`` and ``warnings`` as sets; ``supply`` as a list of ``{code, units}``
pairs in any order. The service prunes empty lists and nulls from its answers (CDS Hooks forbids
emitting them), so an absent list counts as ``[]`` and an absent code as ``null``. Keys of an
expected decision beyond the contract are compared as plain values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from cds_service.replay.fixtures import decisions_of

SET_FIELDS = ("alternatives", "modifiers", "missingDocumentation", "warnings")
VALUE_FIELDS = ("orderedCode", "recommendedCode")


@dataclass(frozen=True)
class Difference:
    """One mismatch. ``order`` is None for differences about the whole response (status, cards)."""

    field: str
    expected: Any
    actual: Any
    order: str | None = None
    detail: str | None = None

    def message(self) -> str:
        where = f"{self.order} · {self.field}" if self.order else self.field
        if self.detail:
            return f"{where}: {self.detail}"
        return f"{where}: expected {_show(self.expected)}, got {_show(self.actual)}"

    def as_dict(self) -> dict[str, Any]:
        return {"order": self.order, "field": self.field, "expected": self.expected,
                "actual": self.actual, "message": self.message()}


def _show(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_show(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key}: {_show(item)}" for key, item in value.items()) + "}"
    return str(value)


def _as_set(value: Any) -> set[str]:
    if value is None:
        return set()
    if isinstance(value, list):
        return {item if isinstance(item, str) else repr(item) for item in value}
    return {repr(value)}


def _units_equal(left: Any, right: Any) -> bool:
    if isinstance(left, (int, float)) and isinstance(right, (int, float)) and not isinstance(left, bool):
        return math.isclose(float(left), float(right), rel_tol=1e-9, abs_tol=1e-9)
    return left == right


def _supply_pairs(value: Any) -> list[tuple[Any, Any]]:
    if not isinstance(value, list):
        return []
    return [(item.get("code"), item.get("units")) for item in value if isinstance(item, dict)]


def compare_supply(order: str, expected: Any, actual: Any) -> list[Difference]:
    wanted = _supply_pairs(expected)
    got = _supply_pairs(actual)
    unmatched = list(got)
    missing = []
    for pair in wanted:
        for candidate in unmatched:
            if candidate[0] == pair[0] and _units_equal(candidate[1], pair[1]):
                unmatched.remove(candidate)
                break
        else:
            missing.append(pair)
    if not missing and not unmatched:
        return []

    def show(pairs: list[tuple[Any, Any]]) -> str:
        return ", ".join(f"{code} × {units}" for code, units in pairs) or "nothing"

    return [Difference(
        "supply",
        [{"code": code, "units": units} for code, units in wanted],
        [{"code": code, "units": units} for code, units in got],
        order,
        f"expected {show(wanted)}, got {show(got)}",
    )]


def compare_decision(order: str, expected: dict[str, Any], actual: dict[str, Any]) -> list[Difference]:
    differences: list[Difference] = []
    for key in VALUE_FIELDS:
        if expected.get(key) != actual.get(key):
            differences.append(Difference(key, expected.get(key), actual.get(key), order))
    for key in SET_FIELDS:
        wanted, got = _as_set(expected.get(key)), _as_set(actual.get(key))
        if wanted != got:
            parts = []
            if wanted - got:
                parts.append(f"missing {sorted(wanted - got)}")
            if got - wanted:
                parts.append(f"unexpected {sorted(got - wanted)}")
            differences.append(Difference(
                key, sorted(wanted), sorted(got), order,
                f"{'; '.join(parts)} (expected {sorted(wanted)}, got {sorted(got)})",
            ))
    differences.extend(compare_supply(order, expected.get("supply"), actual.get("supply")))
    for key, value in expected.items():
        if key in ("order", "supply", *VALUE_FIELDS, *SET_FIELDS):
            continue
        if actual.get(key) != value:
            differences.append(Difference(key, value, actual.get(key), order))
    return differences


def compare_decisions(expected: list[dict[str, Any]], actual: list[dict[str, Any]]) -> list[Difference]:
    differences: list[Difference] = []
    by_order: dict[str, list[dict[str, Any]]] = {}
    for decision in actual:
        by_order.setdefault(str(decision.get("order")), []).append(decision)
    for order, items in by_order.items():
        if len(items) > 1:
            differences.append(Difference("order", 1, len(items), order,
                                          f"{len(items)} decisions for this order, expected one"))
    expected_orders = set()
    for decision in expected:
        order = decision["order"]
        expected_orders.add(order)
        got = by_order.get(order)
        if not got:
            differences.append(Difference(
                "decision", decision.get("recommendedCode"), None, order,
                f"expected a decision (recommendedCode {_show(decision.get('recommendedCode'))}), got none",
            ))
            continue
        differences.extend(compare_decision(order, decision, got[0]))
    for order, items in by_order.items():
        if order not in expected_orders:
            differences.append(Difference(
                "decision", None, items[0].get("recommendedCode"), order,
                f"unexpected decision (recommendedCode {_show(items[0].get('recommendedCode'))})",
            ))
    return differences


def error_text(body: Any, text: str) -> str:
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return body["error"]
    return text


def compare_response(expect: dict[str, Any], status: int, body: Any, text: str = "") -> list[Difference]:
    """Everything in the response that disagrees with the expectation ([] when it all agrees)."""
    wanted_status = expect.get("status", 200)
    if status != wanted_status:
        detail = f"expected HTTP {wanted_status}, got {status}"
        if status >= 400:
            detail += f" ({error_text(body, text)[:300]})"
        return [Difference("status", wanted_status, status, None, detail)]
    differences: list[Difference] = []
    if "error_contains" in expect:
        message = error_text(body, text)
        if expect["error_contains"].lower() not in message.lower():
            differences.append(Difference(
                "error", expect["error_contains"], message[:300], None,
                f"expected the error to mention {expect['error_contains']!r}, got {message[:300]!r}",
            ))
    if "decisions" in expect:
        differences.extend(compare_decisions(expect["decisions"], decisions_of(body)))
    if "card_count" in expect:
        cards = body.get("cards") if isinstance(body, dict) else None
        count = len(cards) if isinstance(cards, list) else 0
        if count != expect["card_count"]:
            differences.append(Difference("cards", expect["card_count"], count, None,
                                          f"expected {expect['card_count']} card(s), got {count}"))
    return differences
