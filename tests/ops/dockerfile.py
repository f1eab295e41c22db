"""A small Dockerfile reader for the tests: the instructions of the final stage, with ENV and
the exec-form ENTRYPOINT / CMD / HEALTHCHECK decoded."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [rest for word, rest in self.instructions if word == keyword]

    def last(self, keyword: str) -> str | None:
        found = self.all(keyword)
        return found[-1] if found else None

    def env(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for rest in self.all("ENV"):
            for token in shlex.split(rest):
                name, _, value = token.partition("=")
                values[name] = value
        return values

    def exec_form(self, keyword: str) -> list[str]:
        rest = self.last(keyword)
        if rest is None:
            return []
        if keyword == "HEALTHCHECK":
            rest = rest[rest.index("CMD") + 3:].strip()
        value = json.loads(rest)  # exec (JSON) form only: no shell in between
        assert isinstance(value, list) and all(isinstance(item, str) for item in value)
        return value


def logical_lines(text: str) -> list[str]:
    lines, current = [], ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if current and stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        lines.append(current + stripped)
        current = ""
    if current:
        lines.append(current)
    return lines


def parse(path: Path) -> list[Stage]:
    stages: list[Stage] = []
    args: dict[str, str] = {}
    for line in logical_lines(path.read_text()):
        word, _, rest = line.partition(" ")
        word, rest = word.upper(), rest.strip()
        if word == "ARG" and not stages:
            name, _, default = rest.partition("=")
            args[name] = default
        elif word == "FROM":
            parts = rest.split()
            base = parts[0]
            for name, value in args.items():
                base = base.replace("${" + name + "}", value)
            stages.append(Stage(base=base, name=parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else None))
        else:
            assert stages, f"{word} before FROM"
            stages[-1].instructions.append((word, rest))
    return stages
