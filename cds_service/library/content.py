"""The library's prose facts (``knowledge/data/library.toml``), checked strictly against the knowledge.

Why checked against the knowledge: a fact about a code the knowledge lacks, or citing a source no
file defines, would show the reader an unsourced or dangling claim. The loader refuses both at
start-up with one message naming file, entry and key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field

from cds_service.knowledge import plain_words as _plain_words
from cds_service.knowledge.plain_words import PlainWordsError, read_toml_model
from cds_service.library.facts import SourceView

FILE_NAME = "library.toml"
Confidence = Literal["confirmed", "secondary", "unconfirmed", "judgement"]
SECTIONS = ("guidelines", "modifiers", "medical_necessity", "supervision", "examples", "supply")
# Weakest first: a fact is only as sure as its least sure source.
_STRENGTH = {"unconfirmed": 0, "judgement": 1, "secondary": 2, "confirmed": 3}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class _Source(_Strict):
    title: str = Field(min_length=1)
    url: str | None = None
    confidence: Confidence


class _Sourced(_Strict):
    source: tuple[str, ...] = Field(min_length=1)
    confidence: Confidence | None = None


class _Fact(_Sourced):
    section: Literal["guidelines", "modifiers", "medical_necessity", "supervision", "examples", "supply"]
    codes: tuple[str, ...] = Field(min_length=1)
    text: str = Field(min_length=1)


class _Alternative(_Sourced):
    between: tuple[str, ...] = Field(min_length=2)
    rule: str = Field(min_length=1)


class _Pctc(_Sourced):
    indicator: int = Field(ge=0, le=9)
    text: str = Field(min_length=1)


class _Global(_Sourced):
    days: str = Field(pattern=r"^(000|010|090|XXX|YYY|ZZZ|MMM)$")
    text: str = Field(min_length=1)


class _Meta(_Strict):
    version: str = Field(min_length=1)


class _LibraryFile(_Strict):
    meta: _Meta
    sources: dict[str, _Source] = {}
    groups: dict[str, tuple[str, ...]] = {}
    pctc: tuple[_Pctc, ...]
    # `global` is a Python keyword; the TOML table keeps the plain name.
    global_: tuple[_Global, ...] = Field(alias="global")
    fact: tuple[_Fact, ...]
    alternative: tuple[_Alternative, ...] = ()


@dataclass(frozen=True)
class Fact:
    text: str
    sources: tuple[str, ...]
    confidence: str


@dataclass(frozen=True)
class Alternative:
    code: str
    rule: str
    sources: tuple[str, ...]
    confidence: str


@dataclass(frozen=True)
class LibraryContent:
    version: str
    sources: Mapping[str, SourceView]
    facts: Mapping[tuple[str, str], tuple[Fact, ...]]  # (code, section) → facts
    alternatives: Mapping[str, tuple[Alternative, ...]]
    pctc: Mapping[int, Fact]
    global_days: Mapping[str, Fact]
    plain_sources: frozenset[str] = field(default_factory=frozenset)

    def section(self, code: str, name: str) -> tuple[Fact, ...]:
        return self.facts.get((code, name), ())


def confidence_of(source_keys: tuple[str, ...], sources: Mapping[str, SourceView],
                  override: str | None = None) -> str:
    """The stated confidence, else the weakest confidence among the fact's sources."""
    if override:
        return override
    levels = [sources[key].confidence for key in source_keys if key in sources]
    return min(levels, key=lambda level: _STRENGTH.get(level, 0)) if levels else "unconfirmed"


def load_library(known_codes: set[str], known_sources: Mapping[str, SourceView],
                 directory: Path | str | None = None) -> LibraryContent:
    """Load ``library.toml``, expand groups and check every code and source against the knowledge."""
    path = Path(directory or _plain_words.DATA_DIR) / FILE_NAME
    parsed, _ = read_toml_model(path, _LibraryFile)
    assert isinstance(parsed, _LibraryFile)

    def fail(where: str, message: str) -> None:
        raise PlainWordsError(f"{FILE_NAME}: {where}: {message}")

    clash = sorted(set(parsed.sources) & set(known_sources))
    if clash:
        fail(f"[sources.{clash[0]}]", "already defined in sources.toml")
    all_sources = {**known_sources, **{key: SourceView(key, s.title, s.confidence, s.url)
                                       for key, s in parsed.sources.items()}}
    for name, members in parsed.groups.items():
        for code in members:
            if code not in known_codes:
                fail(f"[groups] key {name!r}", f"code {code} is not in codes.toml")

    def expand(codes: tuple[str, ...], where: str) -> tuple[str, ...]:
        out: list[str] = []
        for code in codes:
            if code.startswith("group:"):
                if code[6:] not in parsed.groups:
                    fail(where, f"unknown group {code[6:]!r}")
                out += parsed.groups[code[6:]]
            elif code not in known_codes:
                fail(where, f"code {code} is not in codes.toml")
            else:
                out.append(code)
        return tuple(dict.fromkeys(out))

    def check_sources(entry: _Sourced, where: str) -> tuple[str, ...]:
        for key in entry.source:
            if key not in all_sources:
                fail(where + " key 'source'", f"source {key!r} is not defined in sources.toml or [sources]")
        return entry.source

    facts: dict[tuple[str, str], list[Fact]] = {}
    for index, entry in enumerate(parsed.fact, start=1):
        where = f"[[fact]] entry {index} ({entry.section})"
        keys = check_sources(entry, where)
        fact = Fact(entry.text, keys, confidence_of(keys, all_sources, entry.confidence))
        for code in expand(entry.codes, where + " key 'codes'"):
            facts.setdefault((code, entry.section), []).append(fact)

    alternatives: dict[str, list[Alternative]] = {}
    for index, pair in enumerate(parsed.alternative, start=1):
        where = f"[[alternative]] entry {index} ({list(pair.between)!r})"
        keys = check_sources(pair, where)
        members = expand(pair.between, where + " key 'between'")
        level = confidence_of(keys, all_sources, pair.confidence)
        for code in members:
            for other in members:
                if other != code:
                    alternatives.setdefault(code, []).append(Alternative(other, pair.rule, keys, level))

    pctc: dict[int, Fact] = {}
    for index, indicator in enumerate(parsed.pctc, start=1):
        keys = check_sources(indicator, f"[[pctc]] entry {index}")
        pctc[indicator.indicator] = Fact(indicator.text, keys,
                                         confidence_of(keys, all_sources, indicator.confidence))
    global_days: dict[str, Fact] = {}
    for index, period in enumerate(parsed.global_, start=1):
        keys = check_sources(period, f"[[global]] entry {index}")
        global_days[period.days] = Fact(period.text, keys, confidence_of(keys, all_sources, period.confidence))

    return LibraryContent(
        version=parsed.meta.version,
        sources=all_sources,
        facts={key: tuple(value) for key, value in facts.items()},
        alternatives={key: tuple(value) for key, value in alternatives.items()},
        pctc=pctc,
        global_days=global_days,
    )
