"""The request JSON Schema compiled to plain Python checks: a fast yes, never a different answer.

Why: ``jsonschema`` walks the request schema through its generic keyword machinery on every
hook call (~0.5-0.9 ms for a typical order-sign body, as much as parsing the body). The schema
uses a small subset of JSON Schema 2020-12, which compiles here to nested closures with the
same meaning as jsonschema's (its type rules, ``pattern`` as a search, no ``format`` checks).
The compiled check only answers "valid" or "not sure": a body it does not accept is checked
again by jsonschema, which finds the error and words the 400 exactly as before. A keyword this
compiler does not know makes it refuse to compile, so a schema change can never be checked
half-way (the service then uses jsonschema alone). tests/web/test_schema_check.py holds the
two to the same verdict on the fixtures and on generated bodies.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Mapping

Check = Callable[[Any], bool]

#: Keywords that say nothing about validity (jsonschema checks no ``format`` unless asked to).
_ANNOTATIONS = frozenset({"$schema", "$id", "title", "description", "$comment", "$defs", "format", "examples"})
_HANDLED = frozenset({"type", "required", "properties", "additionalProperties", "pattern", "minLength", "const",
                      "items", "minItems", "dependentRequired", "allOf", "if", "then", "$ref"})


class Unsupported(ValueError):
    """The schema uses a keyword this compiler does not implement."""


def _is_integer(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


_TYPES: dict[str, Check] = {
    "object": lambda value: isinstance(value, dict),
    "array": lambda value: isinstance(value, list),
    "string": lambda value: isinstance(value, str),
    "integer": _is_integer,
    "number": lambda value: isinstance(value, (int, float)) and not isinstance(value, bool),
    "boolean": lambda value: isinstance(value, bool),
    "null": lambda value: value is None,
}


def _const_check(expected: Any) -> Check:
    if not isinstance(expected, str):
        raise Unsupported("const other than a string")  # jsonschema's equality of numbers and bools differs
    return lambda value: isinstance(value, str) and value == expected


def compile_schema(schema: Mapping[str, Any]) -> Check:
    """A function that returns True only for documents ``schema`` accepts. Raises Unsupported."""
    root = schema

    def resolve(reference: str) -> Mapping[str, Any]:
        if not reference.startswith("#/"):
            raise Unsupported(f"$ref {reference!r}")
        node: Any = root
        for part in reference[2:].split("/"):
            node = node[part]
        return node  # type: ignore[no-any-return]

    def build(node: Mapping[str, Any]) -> Check:
        unknown = set(node) - _ANNOTATIONS - _HANDLED
        if unknown:
            raise Unsupported(", ".join(sorted(unknown)))
        checks: list[Check] = []
        if "$ref" in node:
            checks.append(build(resolve(node["$ref"])))
        if "type" in node:
            names = [node["type"]] if isinstance(node["type"], str) else list(node["type"])
            tests = [_TYPES[name] for name in names]
            checks.append(lambda value: any(test(value) for test in tests))
        if "const" in node:
            checks.append(_const_check(node["const"]))
        if "pattern" in node:
            search = re.compile(node["pattern"]).search
            checks.append(lambda value: not isinstance(value, str) or search(value) is not None)
        if "minLength" in node:
            shortest = int(node["minLength"])
            checks.append(lambda value: not isinstance(value, str) or len(value) >= shortest)
        if "required" in node:
            required = tuple(node["required"])
            checks.append(lambda value: not isinstance(value, dict) or all(key in value for key in required))
        if "dependentRequired" in node:
            dependent = {key: tuple(needs) for key, needs in node["dependentRequired"].items()}
            checks.append(lambda value: not isinstance(value, dict) or all(
                need in value for key, needs in dependent.items() if key in value for need in needs))
        if "properties" in node or "additionalProperties" in node:
            if isinstance(node.get("additionalProperties"), bool):
                raise Unsupported("boolean additionalProperties")
            properties = {key: build(sub) for key, sub in (node.get("properties") or {}).items()}
            extra = build(node["additionalProperties"]) if "additionalProperties" in node else None

            def members(value: Any) -> bool:
                if not isinstance(value, dict):
                    return True
                for key, item in value.items():
                    check = properties.get(key)
                    if check is not None:
                        if not check(item):
                            return False
                    elif extra is not None and not extra(item):
                        return False
                return True

            checks.append(members)
        if "items" in node:
            item_check = build(node["items"])
            checks.append(lambda value: not isinstance(value, list) or all(item_check(item) for item in value))
        if "minItems" in node:
            fewest = int(node["minItems"])
            checks.append(lambda value: not isinstance(value, list) or len(value) >= fewest)
        if "allOf" in node:
            parts = [build(sub) for sub in node["allOf"]]
            checks.append(lambda value: all(part(value) for part in parts))
        if "if" in node:
            condition = build(node["if"])
            then = build(node["then"]) if "then" in node else None
            checks.append(lambda value: then is None or not condition(value) or then(value))
        elif "then" in node:
            pass  # "then" without "if" has no effect
        if len(checks) == 1:
            return checks[0]
        return lambda value: all(check(value) for check in checks)

    return build(schema)
