"""Coding knowledge loaded from versioned, sourced data files (``data/*.toml``).

The app calls :func:`load_knowledge` once at start-up; the result is immutable and indexed so
each request only does dict look-ups.
"""

from __future__ import annotations

from cds_service.knowledge.loader import KnowledgeError, load_knowledge
from cds_service.knowledge.model import Knowledge

__all__ = ["Knowledge", "KnowledgeError", "load_knowledge"]
