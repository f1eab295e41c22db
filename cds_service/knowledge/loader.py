"""Read, validate and index the knowledge files under ``data/``.

Validation is deliberately strict and runs at start-up: a typo in a data file (an unknown route,
a fact without a source, a bad regular expression) must stop the service with a message naming
the file and the entry, not surface later as a silently wrong code recommendation.
"""

from __future__ import annotations

import difflib
import logging
import re
import tomllib
from datetime import date
from pathlib import Path
from typing import Any, Callable, Collection, Mapping

from cds_service.knowledge.model import (
    AgentRequirement, CancerSignals, UnitRounding,
    Agent, Applicator, CodeInfo, CodeKey, CodeRule, Condition, DocItem, DocRule, Indication, Knowledge, Matcher,
    ModifierRule, PayerPolicy, Route, Site, Source, Supply, SupplyUnit, Windows,
)
from cds_service.knowledge.vocabulary import (
    BILLING_FACTS, CARRIERS, CODE_KINDS, DOC_KEYS, DOSE_RATES, MODIFIER_POLICIES, ORDER_FACTS, ROUTE_KINDS,
    OBSERVATION_EVIDENCE_GROUPS, SETTINGS, SUPPLY_UNITS, TECHNIQUES, WINDOWS, Fact,
)
from cds_service.knowledge.schema import shape_problems
from cds_service.knowledge.systems import LOINC_URI, SNOMED_URI, normalise_code

log = logging.getLogger(__name__)

DATA_DIR = Path(__file__).parent / "data"
FILES = ("sources", "codes", "agents", "routes", "evidence", "documentation", "edits", "payers", "rules")

CONFIDENCE = {"confirmed", "secondary", "unconfirmed", "judgement"}
# "bundled" is MPFS status B (a code CMS pays only inside another service, e.g. 36000, 99024).
CODE_STATUS = {"active", "bundled", "carrier-priced", "deleted"}
GLOBAL_DAYS = {"000", "010", "090", "XXX", "YYY", "ZZZ"}
COVERED = {"covered", "not-covered", "conditional"}
PA_NEEDED = {"no-auth", "auth-needed", "satisfied", "performpa", "conditional"}
EVIDENCE_SYSTEMS = {"loinc", "snomed", "cpt", "icd10cm", "dicom", "v2-0074"}
AGENT_CODE_SYSTEMS = ("snomed", "rxnorm", "ndc", "hcpcs")
SPLIT_MODIFIERS = ("26", "TC")
MODIFIER_WARNING = "modifier-not-applicable"


class KnowledgeError(ValueError):
    """A knowledge file is missing, unreadable or inconsistent. The message names file and entry."""


class _Checks:
    """Collects every problem in the files so one start-up shows them all."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.provenance: dict[str, tuple[str, ...]] = {}
        self.source_keys: set[str] = set()

    def fail(self, where: str, message: str) -> None:
        self.problems.append(f"{where}: {message}")

    def get(self, entry: dict[str, Any], key: str, where: str, kind: type | tuple[type, ...] = str,
            required: bool = True, choices: Collection[str] | None = None) -> Any:
        value = entry.get(key)
        if value is None:
            if required:
                self.fail(where, f"missing required key '{key}'")
            return None
        if not isinstance(value, kind) or isinstance(value, bool) and kind is int:
            self.fail(where, f"'{key}' must be {getattr(kind, '__name__', kind)}, got {type(value).__name__}")
            return None
        if choices is not None and value not in choices:
            self.fail(where, f"'{key}' has unknown value {value!r} (expected one of {', '.join(sorted(choices))})")
            return None
        return value

    def strings(self, entry: dict[str, Any], key: str, where: str, required: bool = False) -> tuple[str, ...]:
        value = entry.get(key)
        if value is None:
            if required:
                self.fail(where, f"missing required key '{key}'")
            return ()
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
            self.fail(where, f"'{key}' must be a list of non-empty strings")
            return ()
        return tuple(value)

    def sourced(self, entry: dict[str, Any], where: str) -> tuple[str, ...]:
        """Every fact must cite at least one known source; an optional confidence must be known."""
        sources = self.strings(entry, "source", where)
        if not sources:
            self.fail(where, "fact has no 'source'")
        for key in sources:
            if self.source_keys and key not in self.source_keys:
                self.fail(where, f"source {key!r} is not defined in sources.toml")
        self.get(entry, "confidence", where, required=False, choices=CONFIDENCE)
        self.provenance[where] = sources
        return sources

    def pattern(self, entry: dict[str, Any], where: str) -> re.Pattern[str] | None:
        text = self.get(entry, "text", where, required=False)
        if text is None:
            return None
        try:
            return re.compile(text, re.IGNORECASE)
        except re.error as error:
            self.fail(where, f"text pattern does not compile: {error}")
            return None


def _read(directory: Path, name: str, checks: _Checks) -> dict[str, Any]:
    path = directory / f"{name}.toml"
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise KnowledgeError(f"{path.name}: knowledge file is missing (looked in {directory})") from None
    except tomllib.TOMLDecodeError as error:
        raise KnowledgeError(f"{path.name}: not valid TOML: {error}") from None
    meta = data.get("meta")
    where = f"{path.name} [meta]"
    if not isinstance(meta, dict):
        checks.fail(where, "header table [meta] is missing")
        return data
    checks.get(meta, "code_set_year", where, int)
    checks.get(meta, "effective_date", where, date)
    checks.get(meta, "version", where, str)
    return data


def _entries(data: dict[str, Any], table: str, file: str, checks: _Checks) -> list[tuple[str, dict[str, Any]]]:
    items = data.get(table, [])
    if not isinstance(items, list):
        checks.fail(file, f"[[{table}]] must be an array of tables")
        return []
    out = []
    for index, item in enumerate(items):
        label = item.get("key") or item.get("code") or item.get("agent") or item.get("kind") or item.get("icd10cm") or index
        out.append((f"{file} {table} {label!r}", item))
    return out


def _matcher(entries: list[tuple[str, str, dict[str, Any]]], systems: tuple[str, ...], checks: _Checks) -> Matcher:
    """Index codes → key and collect compiled text patterns, refusing a code claimed twice."""
    by_code: dict[CodeKey, str] = {}
    patterns: list[tuple[str, re.Pattern[str]]] = []
    for where, key, entry in entries:
        for system in systems:
            for code in checks.strings(entry, system, where):
                index = (system, normalise_code(system, code))
                if index in by_code and by_code[index] != key:
                    checks.fail(where, f"{system} code {code} is already used by {by_code[index]!r}")
                by_code[index] = key
        pattern = checks.pattern(entry, where)
        if pattern is not None:
            patterns.append((key, pattern))
    return Matcher(by_code=by_code, patterns=tuple(patterns))


def load_knowledge(directory: Path | str | None = None) -> Knowledge:
    """Load and validate the knowledge files; raise :class:`KnowledgeError` naming file and entry."""
    directory = Path(directory) if directory is not None else DATA_DIR
    checks = _Checks()
    data = {name: _read(directory, name, checks) for name in FILES}
    shape = [problem for name in FILES for problem in shape_problems(f"{name}.toml", data[name])]
    if shape:
        # Wrong keys first and alone: checking the meaning of a mis-shaped file only adds noise.
        raise KnowledgeError("invalid knowledge files:\n  " + "\n  ".join(shape))

    sources: dict[str, Source] = {}
    for key, entry in (data["sources"].get("sources") or {}).items():
        where = f"sources.toml sources {key!r}"
        title = checks.get(entry, "title", where)
        confidence = checks.get(entry, "confidence", where, choices=CONFIDENCE)
        rechecked = entry.get("rechecked")
        note = entry.get("rechecked_note")
        if rechecked is not None and not (isinstance(rechecked, date) and isinstance(note, str) and note.strip()):
            checks.fail(where, "'rechecked' is a date and needs a 'rechecked_note' saying which facts were verified")
        sources[key] = Source(key=key, title=title or "", confidence=confidence or "", url=entry.get("url"),
                              rechecked=rechecked if isinstance(rechecked, date) else None,
                              rechecked_note=note if isinstance(note, str) else None)
    checks.source_keys = set(sources)

    codes = _load_codes(data["codes"], checks)
    agents, agent_matcher, indications = _load_agents(data["agents"], checks)
    routes, route_matcher, sites, site_matcher, applicators, applicator_matcher = _load_routes(data["routes"], codes, checks)
    for agent in agents.values():
        for route in agent.routes + ((agent.only_route,) if agent.only_route else ()):
            if route not in routes:
                checks.fail(f"agents.toml agent {agent.key!r}", f"route {route!r} is not defined in routes.toml")
    evidence_parts = _load_evidence(data["evidence"], checks)
    doc_items, doc_by_kind, doc_by_code, body_site_kinds = _load_documentation(data["documentation"], codes, checks,
                                                                                  frozenset(agents))
    bundling, lookback, no_split, global_days, global_kinds = _load_edits(data["edits"], codes, checks)
    default_payer, payers = _load_payers(data["payers"], checks)
    code_rules, modifier_rules, supply_units, windows, rate_default = _load_rules(
        data["rules"], codes, sites, applicators, checks)
    for agent in agents.values():
        if agent.supply is not None and agent.supply.unit not in supply_units:
            checks.fail(f"agents.toml agent {agent.key!r}", f"supply unit {agent.supply.unit!r} has no [[supply_unit]] in rules.toml")

    if checks.problems:
        raise KnowledgeError("invalid knowledge files:\n  " + "\n  ".join(checks.problems))

    if directory.resolve() != DATA_DIR.resolve():
        # Say which folder decides the advice: a site's copy behaves differently from the built-in one.
        log.info("coding knowledge loaded from %s (%d decision rows)", directory, len(code_rules))
    meta = data["codes"]["meta"]
    versions = sorted({str(data[name]["meta"]["version"]) for name in FILES})
    return Knowledge(
        version="+".join(versions),
        code_set_year=meta["code_set_year"],
        effective_date=meta["effective_date"],
        sources=sources,
        codes=codes,
        agents=agents,
        agent_matcher=agent_matcher,
        indications=indications,
        routes=routes,
        route_matcher=route_matcher,
        sites=sites,
        site_matcher=site_matcher,
        applicators=applicators,
        applicator_matcher=applicator_matcher,
        doc_items=doc_items,
        doc_by_kind=doc_by_kind,
        doc_by_code=doc_by_code,
        body_site_route_kinds=body_site_kinds,
        bundling=bundling,
        global_lookback_days=lookback,
        global_period_days=global_days,
        global_period_kinds=global_kinds,
        pctc_without_split=no_split,
        default_payer=default_payer,
        payers=payers,
        code_rules=code_rules,
        modifier_rules=modifier_rules,
        supply_units=supply_units,
        windows=windows,
        sealed_dose_rate_default=rate_default,
        directory=str(directory),
        provenance=dict(checks.provenance),
        unit_rounding=_unit_rounding(data["rules"], checks),
        pctc_meaning=_pctc_meaning(data["edits"], no_split, checks),
        **evidence_parts,
    )


def _load_codes(data: dict[str, Any], checks: _Checks) -> dict[str, CodeInfo]:
    codes: dict[str, CodeInfo] = {}
    for where, entry in _entries(data, "code", "codes.toml", checks):
        code = checks.get(entry, "code", where)
        descriptor = checks.get(entry, "descriptor", where)
        kind = checks.get(entry, "kind", where, choices=CODE_KINDS)
        status = checks.get(entry, "status", where, choices=CODE_STATUS)
        deleted = status == "deleted"
        global_days = checks.get(entry, "global_days", where, required=not deleted, choices=GLOBAL_DAYS)
        pctc = checks.get(entry, "pctc", where, int, required=not deleted)
        if pctc is not None and pctc not in (0, 1, 2, 3, 4, 5, 6, 7, 8, 9):
            checks.fail(where, f"'pctc' {pctc} is not a CMS PC/TC indicator")
        sources = checks.sourced(entry, where)
        techniques = checks.strings(entry, "techniques", where)
        for technique in techniques:
            if technique not in TECHNIQUES:
                checks.fail(where, f"technique {technique!r} is not one of {', '.join(sorted(TECHNIQUES))}")
        if code in codes:
            checks.fail(where, "code is listed twice")
        if code:
            codes[code] = CodeInfo(code=code, descriptor=descriptor or "", kind=kind or "related",
                                   status=status or "active", global_days=global_days, pctc=pctc,
                                   replaced_by=checks.strings(entry, "replaced_by", where, required=deleted),
                                   replacement_note=checks.get(entry, "replacement_note", where, required=False),
                                   sources=sources, techniques=techniques,
                                   dose_rate=checks.get(entry, "dose_rate", where, required=False, choices=DOSE_RATES),
                                   )
    for code in codes.values():
        for replacement in code.replaced_by:
            if replacement not in codes or codes[replacement].deleted:
                checks.fail(f"codes.toml code {code.code!r}", f"replacement {replacement!r} is not an active code")
    return codes


def _load_agents(data: dict[str, Any], checks: _Checks) -> tuple[dict[str, Agent], Matcher, dict[str, Indication]]:
    agents: dict[str, Agent] = {}
    matcher_entries = []
    for where, entry in _entries(data, "agent", "agents.toml", checks):
        key = checks.get(entry, "key", where)
        supply = None
        if "supply" in entry:
            raw = entry["supply"] if isinstance(entry["supply"], dict) else {}
            code = checks.get(raw, "code", f"{where} supply")
            unit = checks.get(raw, "unit", f"{where} supply", choices=SUPPLY_UNITS)
            settings = checks.strings(raw, "settings", f"{where} supply")
            for setting in settings:
                if setting not in SETTINGS:
                    checks.fail(f"{where} supply", f"setting {setting!r} is not one of {', '.join(sorted(SETTINGS))}")
            if settings:
                # A setting limit is a billing fact of its own and needs its own source.
                checks.sourced({"source": raw.get("settings_source")}, f"{where} supply settings")
            notes = raw.get("setting_notes") or {}
            if not isinstance(notes, dict):
                checks.fail(f"{where} supply", "setting_notes must be a table of setting = note")
                notes = {}
            for setting, note in notes.items():
                if setting not in SETTINGS | {"unknown"} or setting in settings:
                    checks.fail(f"{where} supply", f"setting_notes: {setting!r} is not a setting the code is "
                                                   "withheld in (a setting outside `settings`, or unknown)")
                if not isinstance(note, str) or not note.strip():
                    checks.fail(f"{where} supply", f"setting_notes.{setting} must be a sentence")
            if notes and not settings:
                checks.fail(f"{where} supply", "setting_notes need `settings` (the code is billed everywhere)")
            if code and unit:
                supply = Supply(code=code, unit=unit, settings=settings,
                                setting_notes={k: str(v) for k, v in notes.items()})
        agent = Agent(
            key=key or "",
            name=checks.get(entry, "name", where) or "",
            carrier=checks.get(entry, "carrier", where, choices=CARRIERS) or "",
            routes=checks.strings(entry, "routes", where, required=True),
            only_route=checks.get(entry, "only_route", where, required=False),
            supply=supply,
            dose_rate=checks.get(entry, "dose_rate", where, required=False, choices=DOSE_RATES),
            note=checks.get(entry, "note", where, required=False),
            sources=checks.sourced(entry, where),
        )
        if agent.only_route and agent.only_route not in agent.routes:
            checks.fail(where, f"only_route {agent.only_route!r} is not among its routes")
        if not agent.sealed and agent.supply is None:
            checks.fail(where, "an unsealed radiopharmaceutical needs a supply code")
        if key in agents:
            checks.fail(where, "agent key is listed twice")
        if key:
            agents[key] = agent
            matcher_entries.append((where, key, entry))
    matcher = _matcher(matcher_entries, AGENT_CODE_SYSTEMS, checks)

    indications: dict[str, Indication] = {}
    for where, entry in _entries(data, "indication", "agents.toml", checks):
        agent = checks.get(entry, "agent", where)
        if agent and agent not in agents:
            checks.fail(where, f"agent {agent!r} is not defined")
        groups = entry.get("requires")
        if not isinstance(groups, list) or not groups or not all(
                isinstance(group, list) and group and all(isinstance(item, str) for item in group) for group in groups):
            checks.fail(where, "'requires' must be a non-empty list of non-empty lists of codes")
            groups = []
        checks.sourced(entry, where)
        if agent:
            indications[agent] = Indication(agent=agent, requires=tuple(tuple(group) for group in groups))
    return agents, matcher, indications


def _load_routes(data: dict[str, Any], codes: dict[str, CodeInfo], checks: _Checks
                 ) -> tuple[dict[str, Route], Matcher, dict[str, Site], Matcher, dict[str, Applicator], Matcher]:
    routes: dict[str, Route] = {}
    route_entries = []
    for where, entry in _entries(data, "route", "routes.toml", checks):
        key = checks.get(entry, "key", where)
        kind = checks.get(entry, "kind", where, choices=ROUTE_KINDS)
        checks.sourced(entry, where)
        if key:
            routes[key] = Route(key=key, kind=kind or "", specific_site=entry.get("specific_site"))
            route_entries.append((where, key, entry))
    sites: dict[str, Site] = {}
    site_entries = []
    for where, entry in _entries(data, "site", "routes.toml", checks):
        key = checks.get(entry, "key", where)
        implied = checks.get(entry, "implies_route", where, required=False)
        if implied and implied not in routes:
            checks.fail(where, f"implies_route {implied!r} is not a defined route")
        checks.sourced(entry, where)
        if key:
            sites[key] = Site(key=key, implies_route=implied)
            site_entries.append((where, key, entry))
    for route in routes.values():
        if route.specific_site and route.specific_site not in sites:
            checks.fail(f"routes.toml route {route.key!r}", f"specific_site {route.specific_site!r} is not a defined site")
    applicators: dict[str, Applicator] = {}
    applicator_entries = []
    for where, entry in _entries(data, "applicator", "routes.toml", checks):
        key = checks.get(entry, "key", where)
        code = checks.get(entry, "code", where)
        if code and (code not in codes or codes[code].kind != "applicator"):
            checks.fail(where, f"code {code!r} is not an applicator code in codes.toml")
        checks.sourced(entry, where)
        if key and code:
            applicators[key] = Applicator(key=key, code=code)
            applicator_entries.append((where, key, entry))
    return (routes, _matcher(route_entries, ("snomed",), checks), sites, _matcher(site_entries, ("snomed",), checks),
            applicators, _matcher(applicator_entries, ("snomed",), checks))


def _load_evidence(data: dict[str, Any], checks: _Checks) -> dict[str, Any]:
    evidence: dict[str, frozenset[CodeKey]] = {}
    prefixes: tuple[str, ...] = ()
    for name, entry in (data.get("evidence") or {}).items():
        where = f"evidence.toml evidence {name!r}"
        checks.sourced(entry, where)
        keys: set[CodeKey] = set()
        for system, values in entry.items():
            if system in ("source", "confidence"):
                continue
            if system == "icd10cm_prefixes":
                prefixes = checks.strings(entry, system, where)
                continue
            if system not in EVIDENCE_SYSTEMS:
                checks.fail(where, f"unknown code system {system!r} (expected one of {', '.join(sorted(EVIDENCE_SYSTEMS))})")
                continue
            keys.update((system, normalise_code(system, code)) for code in checks.strings(entry, system, where))
        if name.startswith("malignancy-") and "icd10cm_prefixes" in entry:
            checks.fail(where, "icd10cm_prefixes belong to the 'malignancy' group only")
        evidence[name] = frozenset(keys)
    # Issue 20: `malignancy-<part>` groups (each with its own source) extend the malignancy set.
    parts = [codes for name, codes in evidence.items() if name.startswith("malignancy-")]
    if parts and "malignancy" in evidence:
        evidence["malignancy"] = evidence["malignancy"].union(*parts)
    for needed in ("malignancy", "staging", "performance-status", "disease-status", "body-weight", "imaging",
                   "follow-up", "progress-note", "radiopharmaceutical-procedure", "hdr-modality", "ldr-modality"):
        if needed not in evidence:
            checks.fail("evidence.toml", f"evidence group {needed!r} is missing")
    if not prefixes:
        checks.fail("evidence.toml evidence 'malignancy'", "icd10cm_prefixes is missing")

    sequencing = set()
    for where, entry in _entries(data, "sequencing", "evidence.toml", checks):
        code = checks.get(entry, "icd10cm", where)
        checks.sourced(entry, where)
        if code:
            sequencing.add(code.upper())

    def settings(table: str) -> dict[str, str]:
        out = {}
        for where, entry in _entries(data, table, "evidence.toml", checks):
            code = checks.get(entry, "code", where)
            setting = checks.get(entry, "setting", where, choices=SETTINGS)
            checks.sourced(entry, where)
            if code and setting:
                out[code] = setting
        return out

    def text_pattern(table: str) -> re.Pattern[str]:
        entry = data.get(table) or {}
        where = f"evidence.toml {table}"
        checks.sourced(entry, where)
        if "text" not in entry:
            checks.fail(where, "missing required key 'text'")
        return checks.pattern(entry, where) or re.compile(r"(?!x)x")

    return {
        "cancer": _cancer_signals(data, checks, text_pattern),
        "evidence": evidence,
        "malignancy_prefixes": prefixes,
        "sequencing_codes": frozenset(sequencing),
        "encounter_settings": settings("encounter_class"),
        "place_of_service": settings("place_of_service"),
        "hospital_outpatient": text_pattern("hospital_outpatient"),
        "therapy_text": text_pattern("therapy_text"),
        "diagnostic_text": text_pattern("diagnostic_text"),
        "sealed_text": text_pattern("sealed_text"),
        "hdr_text": text_pattern("hdr_text"),
        "ldr_text": text_pattern("ldr_text"),
        "insertion_text": text_pattern("insertion_text"),
        "in_place_text": text_pattern("in_place_text"),
    }


_CANCER_ROLES = frozenset({"primary", "secondary"})
_EXTENSION_ROLES = frozenset({"histology", "related-primary"})
_BEHAVIOURS = frozenset({"malignant", "never"})


def _cancer_signals(data: dict[str, Any], checks: _Checks,
                    text_pattern: Callable[[str], re.Pattern[str]]) -> CancerSignals:
    """The mCODE tables of evidence.toml: profile and category roles, the histology extension,
    ICD-O-3 behaviour digits, SNOMED morphologies and the verification statuses that never count."""
    def roles(table: str, key: str, choices: Collection[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for where, entry in _entries(data, table, "evidence.toml", checks):
            checks.sourced(entry, where)
            value = checks.get(entry, key, where)
            role = checks.get(entry, "role", where, choices=choices)
            if value and role:
                out[value] = role
        return out

    extensions = roles("cancer_condition_extension", "url", _EXTENSION_ROLES)
    behaviour = data.get("histology_behaviour") or {}
    checks.sourced(behaviour, "evidence.toml histology_behaviour")
    morphology: dict[str, str] = {}
    for where, entry in _entries(data, "morphology", "evidence.toml", checks):
        checks.sourced(entry, where)
        code = checks.get(entry, "snomed", where)
        kind = checks.get(entry, "behaviour", where, choices=_BEHAVIOURS)
        if code and kind:
            morphology[code] = kind
    verification = data.get("condition_verification_never") or {}
    checks.sourced(verification, "evidence.toml condition_verification_never")
    malignant = frozenset(checks.strings(behaviour, "malignant", "evidence.toml histology_behaviour", required=True))
    never = frozenset(checks.strings(behaviour, "never", "evidence.toml histology_behaviour", required=True))
    if malignant & never:
        checks.fail("evidence.toml histology_behaviour", "a behaviour digit cannot be both malignant and never")
    return CancerSignals(
        roles_by_profile=roles("cancer_condition_profile", "url", _CANCER_ROLES),
        roles_by_category=roles("cancer_condition_category", "snomed", _CANCER_ROLES),
        histology_extensions=frozenset(url for url, role in extensions.items() if role == "histology"),
        related_primary_extensions=frozenset(url for url, role in extensions.items() if role == "related-primary"),
        icdo3_systems=frozenset(checks.strings(behaviour, "icdo3_systems", "evidence.toml histology_behaviour",
                                               required=True)),
        malignant_behaviour=malignant,
        never_behaviour=never,
        morphology=morphology,
        in_situ_text=text_pattern("in_situ_text"),
        malignancy_text=text_pattern("malignancy_text"),
        malignancy_text_negation=text_pattern("malignancy_text_negation"),
        never_verification=frozenset(checks.strings(verification, "codes",
                                                    "evidence.toml condition_verification_never", required=True)),
    )


def _requirement(entry: dict[str, Any], where: str, agents: frozenset[str], checks: _Checks) -> AgentRequirement | None:
    """The per-agent part of a documentation item, or None for a general item."""
    listed = checks.strings(entry, "agents", where)
    if not listed:
        return None
    for agent in listed:
        if agent not in agents:
            checks.fail(where, f"agent {agent!r} is not defined in agents.toml")
    strength = checks.get(entry, "strength", where, choices={"required", "advice"}) or "required"

    def pattern(key: str) -> re.Pattern[str] | None:
        text = checks.get(entry, key, where, required=False)
        if text is None:
            return None
        try:
            return re.compile(text, re.IGNORECASE)
        except re.error as error:
            checks.fail(where, f"'{key}' is not a valid pattern: {error}")
            return None

    requirement = AgentRequirement(
        agents=frozenset(listed), strength=strength,
        report_text=pattern("report_text"), report_negation=pattern("report_negation"),
        negation_conflicts=entry.get("negation_conflicts") is True,
        window_days=checks.get(entry, "window_days", where, int, required=False),
        procedure_hcpcs=frozenset(checks.strings(entry, "procedure_hcpcs", where)),
        observation_loinc=frozenset(checks.strings(entry, "observation_loinc", where)),
        observation_value_text=pattern("observation_value_text"),
        conflict_icd10cm_prefixes=checks.strings(entry, "conflict_icd10cm_prefixes", where),
        conflict=checks.get(entry, "conflict", where, required=False),
        condition_icd10cm_prefixes=checks.strings(entry, "condition_icd10cm_prefixes", where),
        only_with_icd10cm_prefixes=checks.strings(entry, "only_with_icd10cm_prefixes", where),
        medication_rxnorm=frozenset(checks.strings(entry, "medication_rxnorm", where)),
        medication_text=pattern("medication_text"),
    )
    if not (requirement.report_text or requirement.procedure_hcpcs or requirement.observation_value_text
            or requirement.medication_rxnorm or requirement.medication_text):
        checks.fail(where, "a per-agent item needs report_text, procedure_hcpcs, observation_value_text "
                           "or medication_rxnorm / medication_text")
    if (requirement.conflict_icd10cm_prefixes or requirement.negation_conflicts) and not requirement.conflict:
        checks.fail(where, "a conflict needs its 'conflict' wording for the warning card")
    return requirement


def _load_documentation(data: dict[str, Any], codes: dict[str, CodeInfo], checks: _Checks, agents: frozenset[str]
                        ) -> tuple[dict[str, DocItem], dict[str, DocRule], dict[str, DocRule], frozenset[str]]:
    items: dict[str, DocItem] = {}
    for where, entry in _entries(data, "item", "documentation.toml", checks):
        key = checks.get(entry, "key", where, choices=set(DOC_KEYS))
        # `phase` (pre or post) is documentation for the reader; which keys apply after a completed
        # procedure is said by the `post` lists of the [[rule]] entries.
        checks.get(entry, "phase", where, choices={"pre", "post"})
        order_fact = checks.get(entry, "order_fact", where, required=False, choices=set(ORDER_FACTS))
        item = DocItem(key=key or "", label=checks.get(entry, "label", where) or "",
                       evidence=checks.get(entry, "evidence", where) or "", order_fact=order_fact,
                       requirement=_requirement(entry, where, agents, checks))
        checks.sourced(entry, where)
        if key:
            items[key] = item
    for key in DOC_KEYS:
        if key not in items:
            checks.fail("documentation.toml", f"documentation item {key!r} is missing")
    # Keep the published key order whatever the file order, so gap lists are stable.
    items = {key: items[key] for key in DOC_KEYS if key in items}

    by_kind: dict[str, DocRule] = {}
    by_code: dict[str, DocRule] = {}
    for where, entry in _entries(data, "rule", "documentation.toml", checks):
        kind = checks.get(entry, "kind", where, required=False, choices=CODE_KINDS)
        code = checks.get(entry, "code", where, required=False)
        if (kind is None) == (code is None):
            checks.fail(where, "a rule needs exactly one of 'kind' or 'code'")
        if code and code not in codes:
            checks.fail(where, f"code {code!r} is not in codes.toml")
        keys = checks.strings(entry, "keys", where, required=True)
        post = checks.strings(entry, "post", where)
        for key in keys + post:
            if key not in items:
                checks.fail(where, f"documentation key {key!r} is not defined")
        checks.sourced(entry, where)
        rule = DocRule(keys=keys, post=post)
        if kind:
            by_kind[kind] = rule
        elif code:
            by_code[code] = rule
    body_site = data.get("body_site") or {}
    checks.sourced(body_site, "documentation.toml body_site")
    route_kinds = checks.strings(body_site, "route_kinds", "documentation.toml body_site", required=True)
    for kind in route_kinds:
        if kind not in ROUTE_KINDS:
            checks.fail("documentation.toml body_site", f"unknown route kind {kind!r}")
    return items, by_kind, by_code, frozenset(route_kinds)


def _load_edits(data: dict[str, Any], codes: dict[str, CodeInfo], checks: _Checks
                ) -> tuple[dict[tuple[str, str], str], int, frozenset[int], str, frozenset[str]]:
    pairs: dict[tuple[str, str], str] = {}
    for where, entry in _entries(data, "bundling", "edits.toml", checks):
        code = checks.get(entry, "code", where)
        reason = checks.get(entry, "reason", where) or ""
        checks.sourced(entry, where)
        for other in (code,) + checks.strings(entry, "with", where, required=True):
            if other and other not in codes:
                checks.fail(where, f"code {other!r} is not in codes.toml")
        for other in checks.strings(entry, "with", where):
            if code:
                pairs[(code, other)] = reason
    global_period = data.get("global_period") or {}
    checks.sourced(global_period, "edits.toml global_period")
    lookback = checks.get(global_period, "lookback_days", "edits.toml global_period", int) or 0
    global_days = checks.get(global_period, "global_days", "edits.toml global_period", choices=GLOBAL_DAYS) or ""
    global_kinds = checks.strings(global_period, "kinds", "edits.toml global_period", required=True)
    for kind in global_kinds:
        if kind not in CODE_KINDS:
            checks.fail("edits.toml global_period", f"unknown code kind {kind!r}")
    split = data.get("modifier_split") or {}
    where = "edits.toml modifier_split"
    checks.sourced(split, where)
    checks.get(split, "warning", where, choices={MODIFIER_WARNING})
    if set(checks.strings(split, "modifiers", where, required=True)) != set(SPLIT_MODIFIERS):
        checks.fail(where, f"'modifiers' must be {', '.join(SPLIT_MODIFIERS)}")
    no_split = split.get("pctc_without_split")
    if not isinstance(no_split, list) or not no_split or not all(
            isinstance(i, int) and not isinstance(i, bool) and 0 <= i <= 9 for i in no_split):
        checks.fail(where, "'pctc_without_split' must be a non-empty list of CMS PC/TC indicators (0-9)")
        no_split = []
    if 1 in no_split:
        checks.fail(where, "indicator 1 is the one that takes 26/TC; it cannot be listed without a split")
    return pairs, lookback, frozenset(no_split), global_days, frozenset(global_kinds)


def _pctc_meaning(data: dict[str, Any], no_split: frozenset[int], checks: _Checks) -> dict[int, str]:
    """The plain meaning of each PC/TC indicator that takes no 26/TC; every one needs its words."""
    where = "edits.toml modifier_split.meaning"
    raw = (data.get("modifier_split") or {}).get("meaning") or {}
    meaning: dict[int, str] = {}
    for key, text in raw.items():
        if not (isinstance(key, str) and key.isdigit() and isinstance(text, str) and text.strip()):
            checks.fail(where, f"{key!r} must be an indicator digit with its meaning as text")
            continue
        meaning[int(key)] = text
    for indicator in sorted(no_split - set(meaning)):
        checks.fail(where, f"indicator {indicator} has no meaning")
    return meaning


def _load_payers(data: dict[str, Any], checks: _Checks) -> tuple[PayerPolicy, dict[str, PayerPolicy]]:
    def policy(entry: dict[str, Any], where: str, key: str) -> PayerPolicy:
        checks.sourced(entry, where)
        return PayerPolicy(
            key=key,
            name=checks.get(entry, "name", where) or key,
            modifier_policy=checks.get(entry, "modifier_policy", where, choices=MODIFIER_POLICIES) or "facility-26",
            covered=checks.get(entry, "covered", where, choices=COVERED) or "conditional",
            pa_needed=checks.get(entry, "pa_needed", where, choices=PA_NEEDED) or "conditional",
        )

    default = policy(data.get("default") or {}, "payers.toml default", "default")
    payers: dict[str, PayerPolicy] = {}
    for where, entry in _entries(data, "payer", "payers.toml", checks):
        key = checks.get(entry, "key", where) or ""
        item = policy(entry, where, key)
        for identifier in checks.strings(entry, "identifiers", where, required=True):
            if "|" not in identifier:
                checks.fail(where, f"identifier {identifier!r} must be written system|value")
            payers[identifier] = item
    return default, payers


def _conditions(when: Any, where: str, facts: Mapping[str, Fact], tables: Mapping[str, Collection[str]],
                codes: Mapping[str, CodeInfo], checks: _Checks) -> tuple[Condition, ...]:
    """The tests of one ``when`` table, each checked against the fact it names."""
    if when is None:
        return ()
    if not isinstance(when, dict):
        checks.fail(where, "'when' must be a table of fact = test")
        return ()
    out = []
    for name, test in when.items():
        at = f"{where} when.{name}"
        fact = facts.get(name)
        if fact is None:
            close = difflib.get_close_matches(name, sorted(facts), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            checks.fail(at, f"unknown fact {name!r} ({hint}known facts: {', '.join(sorted(facts))})")
            continue
        allowed: Collection[str] | None = None
        if isinstance(fact.values, str):
            allowed = tables[fact.values]
        elif fact.values is not None:
            allowed = fact.values

        def value_ok(value: Any) -> bool:
            if fact.kind == "yes-no":
                ok = isinstance(value, bool)
            elif fact.kind == "number":
                ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            elif fact.kind == "code":
                ok = isinstance(value, str) and value in codes
            else:
                ok = isinstance(value, str) and (allowed is None or value in allowed)
            if not ok:
                expected = {"yes-no": "true or false", "number": "a number",
                            "code": "a code defined in codes.toml"}.get(fact.kind) or (
                    "one of " + ", ".join(sorted(allowed or ())))
                checks.fail(at, f"{value!r} is not a value of {name!r} (expected {expected})")
            return ok

        if isinstance(test, dict):
            unknown = set(test) - {"known", "min", "max", "above", "below", "not"}
            if unknown:
                checks.fail(at, f"unknown test {sorted(unknown)[0]!r} (expected known, min, max, above, below or not)")
                continue
            bounds: dict[str, float | None] = {}
            for bound in ("min", "max", "above", "below"):
                value = test.get(bound)
                if value is not None and (fact.kind != "number" or not isinstance(value, (int, float))
                                          or isinstance(value, bool)):
                    checks.fail(at, f"'{bound}' needs a number fact and a number")
                    value = None
                bounds[bound] = value
            known = test.get("known")
            if known is not None and not isinstance(known, bool):
                checks.fail(at, "'known' must be true or false")
                known = None
            negated = test.get("not")
            none_of = tuple(negated if isinstance(negated, list) else [] if negated is None else [negated])
            none_of = tuple(value for value in none_of if value_ok(value))
            out.append(Condition(fact=name, none_of=none_of, known=known, min=bounds["min"], max=bounds["max"],
                                 above=bounds["above"], below=bounds["below"]))
        else:
            values = test if isinstance(test, list) else [test]
            if not values:
                checks.fail(at, "an empty list never holds")
            out.append(Condition(fact=name, one_of=tuple(value for value in values if value_ok(value))))
    return tuple(out)


def _unit_rounding(data: dict[str, Any], checks: _Checks) -> UnitRounding:
    entry = data.get("unit_rounding") or {}
    where = "rules.toml unit_rounding"
    checks.sourced(entry, where)
    direction = checks.get(entry, "direction", where, choices=("up", "half-up")) or "up"
    tolerance = checks.get(entry, "tolerance", where, (int, float))
    minimum = checks.get(entry, "minimum", where, int)
    if tolerance is not None and not 0 <= tolerance < 0.01:
        checks.fail(where, "'tolerance' must be between 0 and 0.01 of a unit")
    if minimum is not None and minimum < 0:
        checks.fail(where, "'minimum' cannot be negative")
    return UnitRounding(direction=direction, tolerance=float(tolerance if tolerance is not None else 1e-6),
                        minimum=minimum if minimum is not None else 1,
                        note=checks.get(entry, "note", where, required=False))


def _load_rules(data: dict[str, Any], codes: dict[str, CodeInfo], sites: Mapping[str, Site],
                applicators: Mapping[str, Applicator], checks: _Checks
                ) -> tuple[tuple[CodeRule, ...], tuple[ModifierRule, ...], dict[str, SupplyUnit], Windows, dict[str, str]]:
    tables: dict[str, Collection[str]] = {"sites": set(sites), "applicators": set(applicators)}
    rules: list[CodeRule] = []
    ids: set[str] = set()

    def rule_id(entry: dict[str, Any], where: str) -> str:
        key = checks.get(entry, "id", where) or ""
        if key in ids:
            checks.fail(where, f"rule id {key!r} is used twice")
        ids.add(key)
        return key

    for index, entry in enumerate(_rows(data, "rule", checks)):
        where = f"rules.toml rule {entry.get('id') or index!r}"
        key = rule_id(entry, where)
        when = _conditions(entry.get("when"), where, ORDER_FACTS, tables, codes, checks)
        keep = entry.get("keep_ordered", False)
        code = checks.get(entry, "code", where, required=keep is not True)
        if keep is True and code is not None:
            checks.fail(where, "give either 'code' or 'keep_ordered = true', not both")
        alternatives = checks.strings(entry, "alternatives", where)
        for listed in ((code,) if code else ()) + alternatives:
            if listed not in codes:
                checks.fail(where, f"code {listed!r} is not defined in codes.toml")
            elif codes[listed].deleted:
                checks.fail(where, f"code {listed!r} is deleted; a rule may not recommend it")
        reason = checks.get(entry, "reason", where) or ""
        for placeholder in re.findall(r"{([^{}]*)}", reason):
            if placeholder not in ORDER_FACTS:
                checks.fail(where, f"reason names {{{placeholder}}}, which is not a fact")
        gaps = checks.strings(entry, "gaps", where)
        for gap in gaps:
            if gap not in DOC_KEYS:
                checks.fail(where, f"gap {gap!r} is not a documentation key")
        rules.append(CodeRule(id=key, when=when, code=None if keep is True else code, alternatives=alternatives,
                              reason=reason, uncertain=checks.get(entry, "uncertain", where, required=False),
                              sources=checks.sourced(entry, where), gaps=gaps))
    if not rules:
        checks.fail("rules.toml", "the decision table [[rule]] is empty")
    elif rules[-1].when:
        checks.fail(f"rules.toml rule {rules[-1].id!r}",
                    "the last rule must have no 'when', so that every therapy order gets a code")
    for applicator in applicators:
        if not any(any(c.fact == "applicator" and applicator in c.one_of for c in rule.when) for rule in rules):
            checks.fail(f"routes.toml applicator {applicator!r}", "no rule in rules.toml codes its insertion")

    modifiers: list[ModifierRule] = []
    for index, entry in enumerate(_rows(data, "modifier", checks)):
        where = f"rules.toml modifier {entry.get('id') or index!r}"
        key = rule_id(entry, where)
        listed = checks.strings(entry, "modifiers", where)
        for modifier in listed:
            if modifier not in SPLIT_MODIFIERS:
                checks.fail(where, f"modifier {modifier!r} is not one of {', '.join(SPLIT_MODIFIERS)}")
        if "modifiers" not in entry:
            checks.fail(where, "missing required key 'modifiers' (an empty list means none)")
        modifiers.append(ModifierRule(id=key, when=_conditions(entry.get("when"), where, BILLING_FACTS, tables,
                                                               codes, checks),
                                      modifiers=listed, sources=checks.sourced(entry, where)))
    if not modifiers or modifiers[-1].when:
        checks.fail("rules.toml modifier", "the modifier table must end with a row that has no 'when'")

    units: dict[str, SupplyUnit] = {}
    for index, entry in enumerate(_rows(data, "supply_unit", checks)):
        where = f"rules.toml supply_unit {entry.get('unit') or index!r}"
        unit = checks.get(entry, "unit", where, choices=set(SUPPLY_UNITS)) or ""
        per_mci = checks.get(entry, "units_per_mci", where, (int, float), required=False)
        fixed = checks.get(entry, "fixed_units", where, int, required=False)
        if (per_mci is None) == (fixed is None):
            checks.fail(where, "give exactly one of 'units_per_mci' or 'fixed_units'")
        checks.sourced(entry, where)
        if unit in units:
            checks.fail(where, "unit is listed twice")
        units[unit] = SupplyUnit(unit=unit, units_per_mci=per_mci, fixed_units=fixed)

    raw_windows = data.get("windows") or {}
    where = "rules.toml windows"
    checks.sourced(raw_windows, where)
    days = {}
    for name in WINDOWS:
        value = checks.get(raw_windows, name, where, int)
        if value is not None and value < 0:
            checks.fail(f"{where} {name}", "a window cannot be negative")
        days[name] = value or 0
    windows = Windows(**days)

    raw_default = data.get("sealed_dose_rate_default") or {}
    where = "rules.toml sealed_dose_rate_default"
    checks.sourced(raw_default, where)
    rate_default: dict[str, str] = {}
    for technique in sorted(TECHNIQUES):
        rate = checks.get(raw_default, technique, where, choices=set(DOSE_RATES))
        if rate:
            rate_default[technique] = rate
    return tuple(rules), tuple(modifiers), units, windows, rate_default


def _rows(data: dict[str, Any], table: str, checks: _Checks) -> list[dict[str, Any]]:
    rows = data.get(table, [])
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        checks.fail("rules.toml", f"[[{table}]] must be an array of tables")
        return []
    return rows


#: Code systems an Observation search token can name, by evidence.toml system name.
_SEARCH_SYSTEM_URIS = {"loinc": LOINC_URI, "snomed": SNOMED_URI}


def observation_search_codes(directory: Path | str | None = None) -> tuple[str, ...]:
    """``system|code`` tokens for every LOINC and SNOMED code of the Observation evidence groups,
    read from the same evidence.toml the engine loads: the prefetch query is generated from the
    data instead of being a hand-kept copy that drifts. Order follows the file, duplicates dropped."""
    path = Path(directory or DATA_DIR) / "evidence.toml"
    with path.open("rb") as handle:
        groups = tomllib.load(handle).get("evidence") or {}
    tokens: dict[str, None] = {}
    for group in OBSERVATION_EVIDENCE_GROUPS:
        entry = groups.get(group) or {}
        for system, uri in _SEARCH_SYSTEM_URIS.items():
            for code in entry.get(system) or ():
                tokens[f"{uri}|{normalise_code(system, str(code))}"] = None
    return tuple(tokens)
