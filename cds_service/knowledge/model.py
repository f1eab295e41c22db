"""The loaded knowledge base: frozen records plus the indexes the engine looks things up in.

Everything here is built once at start-up by :func:`cds_service.knowledge.loader.load_knowledge`;
per-request code only does dict look-ups and runs the pre-compiled text patterns.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from typing import Mapping

CodeKey = tuple[str, str]  # (short system name, normalised code)


@dataclass(frozen=True)
class Source:
    key: str
    title: str
    confidence: str
    url: str | None = None


@dataclass(frozen=True)
class CodeInfo:
    """One CPT code: paraphrased descriptor, which decision branch it belongs to, billing traits."""

    code: str
    descriptor: str
    kind: str  # unsealed | sealed | electronic | applicator | related
    status: str  # active | carrier-priced | deleted
    global_days: str | None = None
    pctc: int | None = None
    replaced_by: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    techniques: tuple[str, ...] = ()
    dose_rate: str | None = None
    count: tuple[int, int] | None = None
    lesion: str | None = None

    @property
    def deleted(self) -> bool:
        return self.status == "deleted"


@dataclass(frozen=True)
class Supply:
    code: str
    unit: str  # per-mCi | per-uCi | per-dose | per-source


@dataclass(frozen=True)
class Agent:
    key: str
    name: str
    carrier: str
    routes: tuple[str, ...]
    only_route: str | None = None
    supply: Supply | None = None
    dose_rate: str | None = None
    note: str | None = None
    sources: tuple[str, ...] = ()

    @property
    def sealed(self) -> bool:
        return self.carrier in ("sealed-source", "electronic")


@dataclass(frozen=True)
class Indication:
    """Every group must be matched: ICD-10-CM entries as prefixes, ``snomed:`` entries exactly."""

    agent: str
    requires: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class Route:
    key: str
    kind: str
    specific_site: str | None = None


@dataclass(frozen=True)
class Site:
    key: str
    implies_route: str | None = None


@dataclass(frozen=True)
class Applicator:
    key: str
    code: str


@dataclass(frozen=True)
class DocItem:
    key: str
    label: str
    evidence: str
    phase: str


@dataclass(frozen=True)
class DocRule:
    keys: tuple[str, ...]
    post: tuple[str, ...] = ()


@dataclass(frozen=True)
class PayerPolicy:
    key: str
    name: str
    modifier_policy: str
    covered: str
    pa_needed: str


@dataclass(frozen=True)
class Matcher:
    """Recognises one kind of thing (agent, route, site, applicator) by code or by text."""

    by_code: Mapping[CodeKey, str] = field(default_factory=dict)
    patterns: tuple[tuple[str, re.Pattern[str]], ...] = ()

    def code(self, system: str | None, code: str | None) -> str | None:
        if not system or not code:
            return None
        return self.by_code.get((system, code))

    def text(self, text: str | None) -> str | None:
        if not text:
            return None
        for key, pattern in self.patterns:
            if pattern.search(text):
                return key
        return None


@dataclass(frozen=True)
class Knowledge:
    """All coding knowledge, validated and indexed. Immutable; shared by every request."""

    version: str
    code_set_year: int
    effective_date: date
    sources: Mapping[str, Source]
    codes: Mapping[str, CodeInfo]
    #: (technique, dose_rate) → the active sealed-source codes for it, lowest count first.
    sealed_family: Mapping[tuple[str, str], tuple[CodeInfo, ...]]
    agents: Mapping[str, Agent]
    agent_matcher: Matcher
    indications: Mapping[str, Indication]
    routes: Mapping[str, Route]
    route_matcher: Matcher
    sites: Mapping[str, Site]
    site_matcher: Matcher
    applicators: Mapping[str, Applicator]
    applicator_matcher: Matcher
    evidence: Mapping[str, frozenset[CodeKey]]
    malignancy_prefixes: tuple[str, ...]
    sequencing_codes: frozenset[str]
    encounter_settings: Mapping[str, str]
    place_of_service: Mapping[str, str]
    hospital_outpatient: re.Pattern[str]
    therapy_text: re.Pattern[str]
    diagnostic_text: re.Pattern[str]
    sealed_text: re.Pattern[str]
    hdr_text: re.Pattern[str]
    ldr_text: re.Pattern[str]
    insertion_text: re.Pattern[str]
    in_place_text: re.Pattern[str]
    doc_items: Mapping[str, DocItem]
    doc_by_kind: Mapping[str, DocRule]
    doc_by_code: Mapping[str, DocRule]
    body_site_route_kinds: frozenset[str]
    bundling: Mapping[tuple[str, str], str]
    global_lookback_days: int
    #: CMS PC/TC indicators whose codes never take modifier 26 or TC (edits.toml modifier_split).
    pctc_without_split: frozenset[int]
    default_payer: PayerPolicy
    payers: Mapping[str, PayerPolicy]
    #: Every fact's key (file, entry) → its source keys, so tests can prove each fact is sourced.
    provenance: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def is_evidence(self, group: str, system: str | None, code: str | None) -> bool:
        return bool(system and code) and (system, code) in self.evidence.get(group, frozenset())

    def payer(self, identifiers: tuple[str, ...]) -> PayerPolicy:
        for identifier in identifiers:
            policy = self.payers.get(identifier)
            if policy is not None:
                return policy
        return self.default_payer
