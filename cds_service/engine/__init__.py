"""The coding engine: pure functions from a :class:`HookCall` and the knowledge to :class:`Guidance`.

Placeholder until the decision rules land: it recognises no radioelement therapy order and
says so, without pretending to decide.
"""

from __future__ import annotations

from cds_service.hooks.model import Guidance, HookCall
from cds_service.knowledge import Knowledge


def advise(call: HookCall, knowledge: Knowledge) -> Guidance:
    """Decide the coding guidance for one hook call."""
    return Guidance()
