"""The library's only window on the coding knowledge.

Why one adapter: everything the library needs from the knowledge — codes, descriptors, global
days, PC/TC indicators, documentation keys, supply codes, bundling edits, sources, code-set year,
and which codes the decision table (rules.toml) can recommend — is read here into small plain
records, so a change to the knowledge API means changing this file only. What the engine would
decide is asked of the decision table's rows, never restated here.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import date

from cds_service.knowledge import Knowledge
from cds_service.knowledge import plain_words as _plain_words
from cds_service.knowledge.model import Agent, CodeRule, Scalar


@dataclass(frozen=True)
class SourceView:
    key: str
    title: str
    confidence: str
    url: str | None = None


@dataclass(frozen=True)
class CodeView:
    code: str
    descriptor: str
    kind: str  # unsealed | sealed | electronic | applicator | related
    status: str  # active | carrier-priced | deleted
    global_days: str | None
    pctc: int | None
    replaced_by: tuple[str, ...]
    sources: tuple[str, ...]


@dataclass(frozen=True)
class DocView:
    key: str
    label: str
    evidence: str
    phase: str  # pre (asked before the order is signed) | post (only once the procedure is done)
    sources: tuple[str, ...]


@dataclass(frozen=True)
class SupplyView:
    code: str
    unit: str
    agent: str
    note: str | None
    used_with: tuple[str, ...]  # the administration codes this supply goes with
    sources: tuple[str, ...]


@dataclass(frozen=True)
class EditView:
    other: str
    reason: str
    sources: tuple[str, ...]


@dataclass(frozen=True)
class CodeSet:
    year: int
    effective: date
    version: str


def code_set(knowledge: Knowledge) -> CodeSet:
    return CodeSet(knowledge.code_set_year, knowledge.effective_date, knowledge.version)


def sources(knowledge: Knowledge) -> dict[str, SourceView]:
    return {key: SourceView(key, s.title, s.confidence, s.url) for key, s in knowledge.sources.items()}


def codes(knowledge: Knowledge) -> dict[str, CodeView]:
    return {code: CodeView(code, info.descriptor, info.kind, info.status, info.global_days, info.pctc,
                           tuple(info.replaced_by), tuple(info.sources))
            for code, info in knowledge.codes.items()}


# The facts a decision-table row tests about the code the order already carries.
_ORDERED_FACTS = frozenset({"ordered_code", "ordered_kind", "ordered_active"})


def _kept_codes(knowledge: Knowledge, rule: CodeRule) -> list[str]:
    """The codes a ``keep_ordered`` row can hand back: every code its tests on the ordered code admit.

    Only the row's tests about the ordered code are applied (the other facts depend on the order);
    a deleted code is never kept, whatever the row says.
    """
    tests = [condition for condition in rule.when if condition.fact in _ORDERED_FACTS]
    kept = []
    for code, info in knowledge.codes.items():
        facts: dict[str, Scalar | None] = {"ordered_code": code, "ordered_kind": info.kind,
                                           "ordered_active": not info.deleted}
        if not info.deleted and all(test.holds(facts[test.fact]) for test in tests):
            kept.append(code)
    return kept


def recommendable_codes(knowledge: Knowledge) -> tuple[str, ...]:
    """Every code a card can put before the clinician, derived from the decision table (rules.toml).

    A row's ``code`` and its ``alternatives`` (the card offers and links those too), and for a
    ``keep_ordered`` row every live code its tests on the ordered code admit. Deleted codes are
    left out (the engine warns about them rather than recommending them). In codes.toml order, so
    the list reads like the library index.
    """
    named: set[str] = set()
    for rule in knowledge.code_rules:
        if rule.code is None:
            named.update(_kept_codes(knowledge, rule))
        else:
            named.update((rule.code, *rule.alternatives))
    return tuple(code for code, info in knowledge.codes.items() if code in named and not info.deleted)


def pctc_without_split(knowledge: Knowledge) -> frozenset[int]:
    return frozenset(knowledge.pctc_without_split)


def _provenance(knowledge: Knowledge, where: str) -> tuple[str, ...]:
    return tuple(knowledge.provenance.get(where, ()))


def documentation(knowledge: Knowledge, code: str) -> list[DocView]:
    """The documentation keys the engine asks for this code (kind rule, then the code's own rule).

    The phase comes from the rule, as the engine reads it: ``keys`` are asked before treatment,
    ``post`` only after a completed procedure.
    """
    info = knowledge.codes.get(code)
    if info is None:
        return []
    rules = [(knowledge.doc_by_kind.get(info.kind), f"documentation.toml rule {info.kind!r}"),
             (knowledge.doc_by_code.get(code), f"documentation.toml rule {code!r}")]
    views: list[DocView] = []
    seen: set[str] = set()
    for rule, where in rules:
        if rule is None:
            continue
        phased = [(key, "pre") for key in rule.keys] + [(key, "post") for key in rule.post]
        for key, phase in phased:
            item = knowledge.doc_items.get(key)
            if item is None or key in seen:
                continue
            seen.add(key)
            views.append(DocView(key, item.label, item.evidence, phase,
                                 tuple(dict.fromkeys(_provenance(knowledge, f"documentation.toml item {key!r}")
                                                     + _provenance(knowledge, where)))))
    return views


def _administration_codes(knowledge: Knowledge, agent: Agent) -> tuple[str, ...]:
    """Which administration codes an agent's supply goes with, asked of the decision table.

    For each route the agent may take, with and without the 3-month follow-up on file, the first
    rules.toml row that holds names the code; the engine adds a supply line only beside an
    unsealed (radiopharmaceutical) code, so sealed and electronic sources return nothing.
    """
    therapy = {"sealed-source": "sealed", "electronic": "electronic"}.get(agent.carrier, "unsealed")
    kinds: list[str | None] = [*sorted({knowledge.routes[r].kind for r in agent.routes if r in knowledge.routes})]
    found: list[str] = []
    for route_kind in kinds or [None]:  # an agent with no route listed: the route is not stated
        for follow_up in (True, False):
            facts: dict[str, Scalar | None] = {"therapy": therapy, "carrier": agent.carrier,
                                               "route_kind": route_kind, "follow_up": follow_up}
            rule = next((rule for rule in knowledge.code_rules if rule.holds(facts)), None)
            info = knowledge.codes.get(rule.code or "") if rule else None
            if info is not None and info.kind == "unsealed" and not info.deleted:
                found.append(info.code)
    return tuple(dict.fromkeys(found))


def supplies(knowledge: Knowledge) -> list[SupplyView]:
    """Every separately billed HCPCS supply code in the knowledge, with its agent and unit."""
    views = []
    for agent in knowledge.agents.values():
        if agent.supply is None:
            continue
        views.append(SupplyView(agent.supply.code, agent.supply.unit, agent.name, agent.note,
                                _administration_codes(knowledge, agent), tuple(agent.sources)))
    return sorted(views, key=lambda view: view.code)


def _bundling_sources() -> dict[tuple[str, str], tuple[str, ...]]:
    """(code, reason) → sources, read from edits.toml itself.

    Why: the loaded knowledge keeps one provenance per code, so two bundling entries for the same
    code (77750 has a CPT one and a team-judgement one) would share the last entry's sources.
    """
    try:
        with (_plain_words.DATA_DIR / "edits.toml").open("rb") as handle:
            entries = tomllib.load(handle).get("bundling", [])
    except (OSError, tomllib.TOMLDecodeError):
        return {}
    found: dict[tuple[str, str], tuple[str, ...]] = {}
    for entry in entries:
        keys = entry.get("source", ())
        found[(entry.get("code"), entry.get("reason"))] = (keys,) if isinstance(keys, str) else tuple(keys)
    return found


def bundling(knowledge: Knowledge, code: str) -> list[EditView]:
    """Codes not to bill with ``code`` (either direction), with the reason and its sources."""
    by_reason = _bundling_sources()
    edits: dict[str, EditView] = {}
    for (first, second), reason in knowledge.bundling.items():
        if code not in (first, second):
            continue
        other = second if first == code else first
        keys = by_reason.get((first, reason)) or _provenance(knowledge, f"edits.toml bundling {first!r}")
        edits.setdefault(other, EditView(other, reason, keys))
    return sorted(edits.values(), key=lambda edit: edit.other)
