"""Check a response against one EHR's limits: the list of what breaks them (empty = fits).

Used by the vendor fixture tests on every card, and usable on recorded traffic.
"""

from __future__ import annotations

import re
import uuid as uuid_module
from typing import Any, Iterable

from cds_service.vendors.profiles import VendorProfile
from cds_service.vendors.shaping import host_of

_ALNUM = re.compile(r"[A-Za-z0-9]+")
# Phrases that only make sense with the detail or another card in view.
_DEPENDENT_SUMMARY = re.compile(r"\b(see (below|above|details?)|below|above)\b|[:;,]\s*$", re.IGNORECASE)


def _is_uuid(value: Any) -> bool:
    try:
        uuid_module.UUID(str(value))
    except ValueError:
        return False
    return isinstance(value, str)


def violations(body: Any, profile: VendorProfile, link_hosts: Iterable[str] = ()) -> list[str]:
    hosts = frozenset(host_of(host) or host.lower() for host in link_hosts)
    problems: list[str] = []
    cards = body.get("cards") if isinstance(body, dict) else None
    if not isinstance(cards, list):
        return ["response has no cards list"]
    seen_uuids: set[str] = set()
    for index, card in enumerate(cards):
        where = f"cards[{index}]"
        summary = card.get("summary")
        if not isinstance(summary, str) or not summary.strip():
            problems.append(f"{where}: no summary")
        elif len(summary) > profile.summary_limit:
            problems.append(f"{where}: summary is {len(summary)} characters (limit {profile.summary_limit})")
        elif profile.standalone_summary and _DEPENDENT_SUMMARY.search(summary):
            problems.append(f"{where}: summary does not stand on its own: {summary!r}")
        suggestions = card.get("suggestions") or []
        behaviour = card.get("selectionBehavior")
        if suggestions and behaviour not in ("any", "at-most-one"):
            problems.append(f"{where}: suggestions without a valid selectionBehavior")
        if behaviour == "at-most-one" and len(suggestions) == 1:
            problems.append(f"{where}: at-most-one with a single suggestion (use any)")
        if profile.any_only and suggestions and behaviour != "any":
            problems.append(f"{where}: selectionBehavior {behaviour!r}, {profile.name} accepts any only")
        for s_index, suggestion in enumerate(suggestions):
            actions = suggestion.get("actions") or []
            if profile.one_action_per_suggestion and len(actions) != 1:
                problems.append(f"{where}.suggestions[{s_index}]: {len(actions)} actions (one allowed)")
            if profile.uuids_required:
                if not _is_uuid(suggestion.get("uuid")):
                    problems.append(f"{where}.suggestions[{s_index}]: no uuid")
                elif suggestion["uuid"] in seen_uuids:
                    problems.append(f"{where}.suggestions[{s_index}]: uuid reused")
                else:
                    seen_uuids.add(suggestion["uuid"])
        if profile.uuids_required:
            if not _is_uuid(card.get("uuid")):
                problems.append(f"{where}: no uuid")
            elif card["uuid"] in seen_uuids:
                problems.append(f"{where}: uuid reused")
            else:
                seen_uuids.add(card["uuid"])
        if profile.topic_code_limit is not None:
            code = ((card.get("source") or {}).get("topic") or {}).get("code")
            if not isinstance(code, str) or not _ALNUM.fullmatch(code) or len(code) > profile.topic_code_limit:
                problems.append(f"{where}: source.topic.code {code!r} is not alphanumeric within "
                                f"{profile.topic_code_limit} characters")
        for l_index, link in enumerate(card.get("links") or []):
            smart = link.get("type") == "smart"
            rule = profile.smart_links if smart else profile.absolute_links
            if rule == "registered" and host_of(str(link.get("url", ""))) not in hosts:
                problems.append(f"{where}.links[{l_index}]: host of {link.get('url')!r} is not registered")
            if smart and not profile.app_context and "appContext" in link:
                problems.append(f"{where}.links[{l_index}]: appContext on a SMART link")
        detail = card.get("detail")
        if profile.detail_limit is not None and isinstance(detail, str) and len(detail) > profile.detail_limit:
            problems.append(f"{where}: detail is {len(detail)} characters (limit {profile.detail_limit})")
    return problems
