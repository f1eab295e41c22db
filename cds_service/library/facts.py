"""The library's only window on the coding knowledge.

Why one adapter: the knowledge and engine packages are being rewritten (decision table as data,
strict models). Everything the library needs from them — codes, descriptors, global days, PC/TC
indicators, documentation keys, supply codes, bundling edits, sources, code-set year — is read
here into small plain records, so re-pointing the library at the new knowledge API means
changing this file only.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import date
from typing import Any

from cds_service.knowledge import Knowledge
from cds_service.knowledge import plain_words as _plain_words
from cds_service.knowledge.plain_words import recommendable_codes as _recommendable


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
    phase: str  # pre | post
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


def recommendable_codes(knowledge: Knowledge) -> tuple[str, ...]:
    """Every code the engine can recommend: the active therapy codes of the knowledge."""
    return _recommendable(knowledge.codes.values())


def pctc_without_split(knowledge: Knowledge) -> frozenset[int]:
    return frozenset(knowledge.pctc_without_split)


def _provenance(knowledge: Knowledge, where: str) -> tuple[str, ...]:
    return tuple(knowledge.provenance.get(where, ()))


def documentation(knowledge: Knowledge, code: str) -> list[DocView]:
    """The documentation keys the engine asks for this code (kind rule, then the code's own rule)."""
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
        for key in (*rule.keys, *rule.post):
            item = knowledge.doc_items.get(key)
            if item is None or key in seen:
                continue
            seen.add(key)
            views.append(DocView(key, item.label, item.evidence, item.phase,
                                 tuple(dict.fromkeys(_provenance(knowledge, f"documentation.toml item {key!r}")
                                                     + _provenance(knowledge, where)))))
    return views


def _route_kinds(knowledge: Knowledge, agent: Any) -> set[str]:
    return {knowledge.routes[r].kind for r in agent.routes if r in knowledge.routes}


def _administration_codes(knowledge: Knowledge, agent: Any) -> tuple[str, ...]:
    """Which administration codes an agent's supply goes with, from its carrier and routes.

    Mirrors the engine's decision order (design §3) for unsealed agents; sealed and electronic
    sources have no supply line computed, so they return nothing.
    """
    if agent.carrier in ("sealed-source", "electronic"):
        return ()
    if agent.carrier == "antibody":
        return ("79403",)
    if agent.carrier == "microspheres":
        return ("79445",)
    found: list[str] = []
    for kind in sorted(_route_kinds(knowledge, agent)):
        found += {"iv": ["77750", "79101"], "cavity": ["77750", "79200"], "oral": ["79005"],
                  "intra-articular": ["79440"],
                  "interstitial": ["79300"] if agent.carrier == "colloid" else []}.get(kind, [])
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
    found = {}
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
