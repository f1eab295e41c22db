"""When a test whose tool or server is missing must fail instead of skipping.

Why: a skipped test proves nothing, and in CI a missing Chromium, podman or PostgreSQL would turn
whole suites into silent skips. In CI (``CI`` true) or when a suite's own flag is set (.ci/run sets
them after installing the tools), those tests fail, naming what is missing; on a developer's
machine they skip.
"""

from __future__ import annotations

import os
from typing import Mapping

TRUE = frozenset({"1", "true", "yes", "on"})


def must_run(*flags: str, env: Mapping[str, str] | None = None) -> bool:
    """True in CI, or when any of ``flags`` (environment variable names) is set to a true value."""
    env = os.environ if env is None else env
    return any(env.get(name, "").strip().lower() in TRUE for name in ("CI", *flags))
