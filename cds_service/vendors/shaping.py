"""Reshape a finished response for one EHR without changing what it advises.

Pure functions over plain JSON (the web layer calls :func:`shape_response` after the pipeline).
What never changes: the ``cds-service.decisions`` extension, ``systemActions``, indicators, the
resources inside suggestion actions, override reasons. What may change, per profile: the
``selectionBehavior`` word, how many equivalent suggestions a card offers, ``source.topic.code``,
links, and the length of ``detail``.
"""

from __future__ import annotations

import copy
import re
import uuid
from typing import Any, Iterable
from urllib.parse import urlsplit

from cds_service.vendors.profiles import VendorProfile

_NON_ALNUM = re.compile(r"[^A-Za-z0-9]+")
SHORTENED_NOTE = "…(shortened for the side panel)"


def shape_response(body: dict[str, Any], profile: VendorProfile,
                   link_hosts: Iterable[str] = (), *, in_place: bool = False) -> dict[str, Any]:
    """A copy of ``body`` within ``profile``'s limits; ``link_hosts`` are the hosts the
    hospital registered with the EHR (used where the profile says links must be registered).
    ``in_place``: shape ``body`` itself, for a caller that keeps only the shaped answer (the
    deep copy cost ~0.5 ms per hook call)."""
    shaped = body if in_place else copy.deepcopy(body)
    hosts = frozenset(host_of(host) or host.lower() for host in link_hosts)
    cards = shaped.get("cards")
    if isinstance(cards, list):
        shaped["cards"] = [shape_card(card, profile, hosts) if isinstance(card, dict) else card for card in cards]
    return shaped


def shape_card(card: dict[str, Any], profile: VendorProfile, link_hosts: frozenset[str]) -> dict[str, Any]:
    _shape_suggestions(card, profile)
    if profile.uuids_required:
        card.setdefault("uuid", str(uuid.uuid4()))
        for suggestion in card.get("suggestions", []):
            suggestion.setdefault("uuid", str(uuid.uuid4()))
    if profile.topic_code_limit is not None:
        topic = card.setdefault("source", {}).setdefault("topic", {})
        topic["code"] = stable_topic_code(card, profile.topic_code_limit)
    if "links" in card:
        links = [_shape_link(link, profile, link_hosts) for link in card["links"]]
        kept = [link for link in links if link is not None]
        if kept:
            card["links"] = kept
        else:
            del card["links"]  # CDS Hooks forbids an empty list
    if isinstance(card.get("summary"), str) and len(card["summary"]) > profile.summary_limit:
        card["summary"] = card["summary"][: profile.summary_limit - 1].rstrip() + "…"
    if profile.detail_limit is not None and isinstance(card.get("detail"), str):
        card["detail"] = shorten_detail(card["detail"], profile.detail_limit)
    return card


def _shape_suggestions(card: dict[str, Any], profile: VendorProfile) -> None:
    suggestions = card.get("suggestions")
    if not isinstance(suggestions, list) or not suggestions:
        return
    if profile.any_only and card.get("selectionBehavior") == "at-most-one" and len(suggestions) > 1:
        # The user may take at most one of these; with ``any`` they could take two conflicting
        # updates of the same order, so offer only the recommended one. The alternatives stay
        # named in the card's detail and in the decisions extension.
        recommended = [s for s in suggestions if s.get("isRecommended")]
        suggestions = card["suggestions"] = recommended[:1] or suggestions[:1]
    if profile.one_action_per_suggestion:
        split: list[dict[str, Any]] = []
        for suggestion in suggestions:
            actions = suggestion.get("actions") or []
            if len(actions) <= 1:
                split.append(suggestion)
                continue
            for index, action in enumerate(actions, start=1):
                part = {key: value for key, value in suggestion.items() if key not in ("actions", "uuid")}
                part["label"] = f"{suggestion.get('label', 'Suggestion')} ({index}/{len(actions)})"
                part["uuid"] = str(uuid.uuid4())
                part["actions"] = [action]
                split.append(part)
        suggestions = card["suggestions"] = split
    # SPEC: with one suggestion, ``at-most-one`` and ``any`` mean the same; ``any`` is the one
    # every client accepts (Epic takes nothing else).
    if card.get("selectionBehavior") == "at-most-one" and len(suggestions) == 1:
        card["selectionBehavior"] = "any"


def _camel(text: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in _NON_ALNUM.split(text) if part)


def stable_topic_code(card: dict[str, Any], limit: int) -> str:
    """An alphanumeric code that is the same every time the same advice is given (Epic keys a
    user's override on it): the CRD card type, our card kind, the recommended code and the
    warning key, e.g. ``TherapyAlternativesOptCode77761``. Never a uuid or a date."""
    raw = card.get("extension")
    extension: dict[str, Any] = raw if isinstance(raw, dict) else {}
    topic = ((card.get("source") or {}).get("topic") or {}).get("code")
    parts = [topic, extension.get("cds-service.card-type"), extension.get("cds-service.recommended-code"),
             extension.get("cds-service.warning")]
    code = "".join(_camel(str(part)) for part in parts if part)
    return (code or "RadioelementCoding")[:limit]


def host_of(url: str) -> str | None:
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    return parts.hostname.lower() if parts.hostname else None


def _shape_link(link: Any, profile: VendorProfile, link_hosts: frozenset[str]) -> dict[str, Any] | None:
    if not isinstance(link, dict):
        return None
    smart = link.get("type") == "smart"
    rule = profile.smart_links if smart else profile.absolute_links
    if rule == "registered" and host_of(str(link.get("url", ""))) not in link_hosts:
        return None  # the EHR would strip it (Oracle) or refuse it (Epic SMART); say so in the README
    if smart and not profile.app_context:
        link.pop("appContext", None)
    return link


def shorten_detail(detail: str, limit: int) -> str:
    """Whole lines up to ``limit`` characters, then a note: the summary carries the advice and
    the decisions extension keeps every fact, the side panel shows the first lines."""
    if len(detail) <= limit:
        return detail
    room = limit - len(SHORTENED_NOTE) - 2
    kept = ""
    for line in detail.split("\n"):
        candidate = f"{kept}\n{line}" if kept else line
        if len(candidate) > room:
            break
        kept = candidate
    if not kept.strip():  # the first line alone is too long: cut it at a word
        kept = detail[:room].rsplit(" ", 1)[0].rstrip()
    return f"{kept.rstrip()}\n\n{SHORTENED_NOTE}"
