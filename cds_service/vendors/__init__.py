"""Vendor profiles: shape a finished CDS Hooks response to what each EHR accepts and shows.

The engine answers in standard CDS Hooks 2.0. An EHR that is stricter than the standard (Epic
accepts ``selectionBehavior: any`` only and keys user overrides on ``source.topic.code``; Oracle
Health strips unregistered links and shows non-critical cards in a narrow panel) gets the same
advice, reshaped at the edge. Shaping never touches ``cds-service.decisions``: the decisions an
auditor or analytics job reads are the same whichever EHR called.
"""

from cds_service.vendors.limits import violations
from cds_service.vendors.profiles import DEFAULT_PROFILE, PROFILE_NAMES, VendorProfile, get_profile
from cds_service.vendors.shaping import shape_response

__all__ = ["DEFAULT_PROFILE", "PROFILE_NAMES", "VendorProfile", "get_profile", "shape_response", "violations"]
