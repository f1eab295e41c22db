"""Coding knowledge loaded from versioned, sourced data files (``data/*.toml``).

The app calls :func:`load_knowledge` once at start-up (from ``CDS_KNOWLEDGE_DIR`` when a site
keeps its own copy); the result is immutable and indexed so each request only does dict
look-ups. The files' shapes are in :mod:`.schema`, the names they may use in :mod:`.vocabulary`,
the decision table in ``data/rules.toml``.
"""

from __future__ import annotations

from cds_service.knowledge.loader import KnowledgeError, load_knowledge
from cds_service.knowledge.model import Knowledge

__all__ = ["Knowledge", "KnowledgeError", "load_knowledge"]
