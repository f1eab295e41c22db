"""Coding knowledge loaded from versioned data files (placeholder until the engine lands)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Knowledge:
    """The loaded knowledge base. Placeholder: no facts yet."""

    code_set_version: str = "none"


def load_knowledge() -> Knowledge:
    """Load and validate the knowledge files; fail fast with a clear message when one is broken."""
    return Knowledge()
