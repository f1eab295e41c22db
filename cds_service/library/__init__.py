"""The code library: ``GET /library`` and ``GET /library/{code}``, built from the knowledge data.

Why server-rendered and token-free: the pages hold no patient data, must work in any browser
without JavaScript (and print), and are linked from cards, so a coder or clinician can open them
straight from the EHR. Texts for patients come in ten languages (``?lang=``, then
``Accept-Language``, then English).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from flask import Blueprint, Flask, current_app, request

from cds_service.knowledge import Knowledge
from cds_service.knowledge.plain_words import (DEFAULT_LANGUAGE, LANGUAGES, PlainWords, PlainWordsError,
                                               load_plain_words, primary_subtag)
from cds_service.library import facts
from cds_service.library.content import LibraryContent, confidence_of, load_library
from cds_service.pages import render_page

blueprint = Blueprint("library", __name__, template_folder="templates")

# Index groups, in the order a coder scans them; the labels are coding terms, kept in English.
GROUPS: tuple[tuple[str, str], ...] = (
    ("unsealed", "Radiopharmaceutical therapy (unsealed sources)"),
    ("sealed", "Sealed-source brachytherapy"),
    ("electronic", "Electronic brachytherapy"),
    ("applicator", "Applicator insertion"),
    ("related", "Related codes (edits and follow-up)"),
    ("deleted", "Deleted codes"),
)
UNITS = {"per-mCi": "per millicurie", "per-uCi": "per microcurie", "per-dose": "per treatment dose (1 unit)",
         "per-source": "per source (1 unit)"}
PCTC_NAMES = {0: "physician service", 1: "professional and technical components", 2: "professional only",
              3: "technical only"}


@dataclass(frozen=True)
class Library:
    """Everything the pages show, read once at start-up."""

    codes: Mapping[str, facts.CodeView]
    recommendable: tuple[str, ...]
    code_set: facts.CodeSet
    content: LibraryContent
    words: PlainWords
    supplies: tuple[facts.SupplyView, ...]
    documentation: Mapping[str, tuple[facts.DocView, ...]]
    bundling: Mapping[str, tuple[facts.EditView, ...]]
    pctc_without_split: frozenset[int]


def build_library(knowledge: Knowledge, words: PlainWords | None = None,
                  content: LibraryContent | None = None) -> Library:
    """Assemble the library from the knowledge (through the adapter) and the two data files."""
    codes = facts.codes(knowledge)
    known_sources = facts.sources(knowledge)
    content = content or load_library(set(codes), known_sources)
    words = words or load_plain_words()
    unknown = sorted(key for key in words.source_keys if key not in content.sources)
    if unknown:
        raise PlainWordsError(f"plain_words.toml: key 'source': {unknown[0]!r} is not defined in sources.toml")
    stray = sorted(code for code in words.by_code if code not in codes)
    if stray:
        raise PlainWordsError(f"plain_words.toml: key 'codes': code {stray[0]} is not in codes.toml")
    return Library(
        codes=codes,
        recommendable=facts.recommendable_codes(knowledge),
        code_set=facts.code_set(knowledge),
        content=content,
        words=words,
        supplies=tuple(facts.supplies(knowledge)),
        documentation={code: tuple(facts.documentation(knowledge, code)) for code in codes},
        bundling={code: tuple(facts.bundling(knowledge, code)) for code in codes},
        pctc_without_split=facts.pctc_without_split(knowledge),
    )


def choose_language() -> str:
    """``?lang=`` when it names a library language, else the best ``Accept-Language`` match, else English."""
    asked = primary_subtag(request.args.get("lang"))
    if asked in LANGUAGES:
        return asked
    for tag, _quality in request.accept_languages:  # already sorted by quality
        subtag = primary_subtag(tag)
        if subtag in LANGUAGES:
            return subtag
    return DEFAULT_LANGUAGE


def _library() -> Library:
    return current_app.extensions["cds_library"]


def _page(template: str, library: Library, language: str, status: int = 200, **context: Any):
    spec = library.words.languages[language]
    response = render_page(template, status=status, lang=language, text_direction=spec.direction,
                           section="library", labels=spec.labels, skip_label=spec.labels.skip,
                           language=language, languages=library.words.languages, library=library,
                           code_set=library.code_set, units=UNITS, pctc_names=PCTC_NAMES, **context)
    response.headers["Vary"] = "Accept-Language"
    return response


@blueprint.get("/library", strict_slashes=False)
def index():
    library = _library()
    language = choose_language()
    groups = []
    for kind, title in GROUPS:
        members = [view for view in library.codes.values()
                   if (view.status == "deleted") == (kind == "deleted") and (kind == "deleted" or view.kind == kind)]
        if members:
            groups.append((kind, title, members))
    return _page("library/index.html", library, language, groups=groups, switch_path="/library")


@blueprint.get("/library/<path:code>")  # any sub-path, so even "a/b" gets the HTML 404 page
def code_page(code: str):
    library = _library()
    language = choose_language()
    view = library.codes.get(code.strip().upper()) if len(code) <= 16 else None
    if view is None:
        # Nothing from the URL is shown back: the page says only that the library lacks the code.
        return _page("library/not_found.html", library, language, status=404, switch_path="/library")
    content = library.content
    plain = library.words.text(view.code, language)
    supplies = [supply for supply in library.supplies if view.code in supply.used_with]
    cited: dict[str, None] = dict.fromkeys(view.sources)

    def cite(keys: tuple[str, ...]) -> tuple[str, ...]:
        cited.update(dict.fromkeys(keys))
        return keys

    sections = {name: content.section(view.code, name) for name in
                ("guidelines", "modifiers", "medical_necessity", "supervision", "examples", "supply")}
    for items in sections.values():
        for fact in items:
            cite(fact.sources)
    for alternative in content.alternatives.get(view.code, ()):
        cite(alternative.sources)
    for doc in library.documentation.get(view.code, ()):
        cite(doc.sources)
    for edit in library.bundling.get(view.code, ()):
        cite(edit.sources)
    for supply in supplies:
        cite(supply.sources)
    pctc_fact = content.pctc.get(view.pctc) if view.pctc is not None else None
    global_fact = content.global_days.get(view.global_days or "")
    for shown in (pctc_fact, global_fact):
        if shown is not None:
            cite(shown.sources)
    if plain:
        cite(library.words.by_code[view.code].source)
    return _page(
        "library/code.html", library, language,
        view=view, plain=plain, plain_sources=library.words.by_code[view.code].source if plain else (),
        sections=sections, alternatives=content.alternatives.get(view.code, ()),
        documentation=library.documentation.get(view.code, ()), edits=library.bundling.get(view.code, ()),
        supplies=supplies, pctc_fact=pctc_fact, global_fact=global_fact,
        cited=[content.sources[key] for key in cited if key in content.sources],
        confidence=lambda keys: confidence_of(tuple(keys), content.sources),
        switch_path=f"/library/{view.code}",
    )


def init_app(app: Flask) -> None:
    """Load and check the library data now, so a bad file stops start-up rather than a request."""
    app.extensions["cds_library"] = build_library(app.extensions["cds_knowledge"])
    app.register_blueprint(blueprint)
