"""What each EHR accepts in a response, as data (one source per limit).

Sources:

* EPIC: Epic on FHIR, "CDS Hooks Tutorial" (https://fhir.epic.com/Documentation?docId=cds-hooks),
  as their public documentation states them: ``selectionBehavior`` ``any`` only, one action per suggestion,
  ``source.topic.code`` alphanumeric and at most 100 characters (user overrides are keyed on it),
  card and suggestion ``uuid`` needed for feedback, SMART links must be registered.
* ORACLE: Oracle Health (Cerner) Millennium "CDS Hooks" page
  (cerner/fhir.cerner.com: content/millennium/cds_hooks.md): links not in the registered
  "allowed links" list are removed, ``appContext`` is not supported on SMART links, non-critical
  cards show in a side panel about 1/8 of the screen wide (text wraps).
* SPEC: CDS Hooks 2.0 (summary under 140 characters; ``selectionBehavior`` is required with
  suggestions; ``at-most-one`` with a single suggestion means the same as ``any``).
"""

from __future__ import annotations

from dataclasses import dataclass

SUMMARY_LIMIT = 139  # SPEC: "<140 characters"


@dataclass(frozen=True)
class VendorProfile:
    """The limits one EHR puts on a response. ``None`` / ``False`` = the standard's own rule."""

    name: str
    # EPIC: only ``any`` is accepted; cards keep one suggestion (the recommended one) so ``any``
    # cannot let the user apply two conflicting updates to the same order.
    any_only: bool = False
    one_action_per_suggestion: bool = False  # EPIC
    topic_code_limit: int | None = None  # EPIC: alphanumeric, at most 100 characters
    uuids_required: bool = False  # EPIC: card and suggestion uuids for feedback
    # Links: "registered" = only hosts the hospital lists in the issuer's ``link_hosts``
    # (ORACLE for every link; EPIC for SMART links), "any" = standard.
    absolute_links: str = "any"
    smart_links: str = "any"
    app_context: bool = True  # ORACLE: not supported on SMART links
    detail_limit: int | None = None  # ORACLE side panel: details stay short
    summary_limit: int = SUMMARY_LIMIT
    standalone_summary: bool = False  # ORACLE: a side-panel summary is read without its detail


GENERIC = VendorProfile("generic")
SANDBOX = VendorProfile("sandbox")
EPIC = VendorProfile("epic", any_only=True, one_action_per_suggestion=True, topic_code_limit=100,
                     uuids_required=True, smart_links="registered")
# 800 characters is about 20 wrapped lines of the Oracle side panel (1/8 of a 1920 px screen,
# ~40 characters a line): our choice; Oracle documents the panel width, not a character count.
# Most details here are shorter (median ~490); the longest lists of missing documentation are cut.
ORACLE = VendorProfile("oracle", uuids_required=True, absolute_links="registered", smart_links="registered",
                       app_context=False, detail_limit=800, standalone_summary=True)

PROFILES = {profile.name: profile for profile in (GENERIC, SANDBOX, EPIC, ORACLE)}
PROFILE_NAMES = tuple(PROFILES)
DEFAULT_PROFILE = "generic"


def get_profile(name: str | None) -> VendorProfile:
    """The named profile; ``None`` is the standard (generic) one. Unknown names are a
    configuration error caught when the issuer file is read, so this raises KeyError."""
    return PROFILES[name or DEFAULT_PROFILE]
