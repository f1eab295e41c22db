"""JSON in and out with orjson, giving the same documents as the standard library.

Why: parsing a typical order-sign body (~38 KB) with ``json`` took about as long as the whole
schema check, and each answer is written through Flask's ``json.dumps``; orjson does both in a
third of the time or less. Where the two libraries would differ, the standard library decides:

* parsing: orjson refuses what ``json`` accepts in a few odd cases (lone surrogates, a UTF-8
  BOM, UTF-16 bodies, numbers beyond a double's range, nesting deeper than 1,024) and reads
  integers of more than 64 bits as floats. A body orjson refuses, or one holding a run of 19 or
  more digits, is parsed by ``json`` exactly as before (with its error messages);
* writing: ``datetime``/``date``/``time`` and dataclasses go to Flask's own default (orjson
  would write them in another format), and a document orjson cannot write (an integer beyond
  64 bits) is written by ``json``; everything else is written as ``json`` writes it, except
  that non-ASCII characters are sent as UTF-8 rather than ``\\uXXXX`` escapes (the same JSON).
"""

from __future__ import annotations

import json
from typing import Any

import orjson
from flask.json.provider import DefaultJSONProvider

# Digits become "d", everything else ".": a run of 19 "d" is a run of 19 digits. (A regular
# expression search for \d{19} took 1 ms on a 38 KB body; translate and find take 0.04 ms.)
_DIGIT_MAP = bytes(0x64 if 0x30 <= byte <= 0x39 else 0x2E for byte in range(256))
_LONG_RUN = b"d" * 19
_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def loads(raw: bytes) -> Any:
    """The parsed document; raises what ``json.loads`` raises (JSONDecodeError, ValueError for
    NaN and Infinity, UnicodeDecodeError, RecursionError) for a body that is not JSON."""
    if _LONG_RUN not in raw.translate(_DIGIT_MAP):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass  # let json decide, and word the error
    return json.loads(raw, parse_constant=_reject_constant)


class OrjsonProvider(DefaultJSONProvider):
    """Flask's JSON provider, writing with orjson when the app's settings allow (compact, keys in
    insertion order, no extra options); anything else goes the standard way."""

    def _orjson(self, obj: Any) -> bytes | None:
        """``obj`` written by orjson, or None where the standard way must write it (sorted or
        indented output, or a document orjson cannot write, such as an integer beyond 64 bits)."""
        if self.sort_keys or not self.compact:
            return None
        try:
            return orjson.dumps(obj, default=self.default, option=_OPTIONS)
        except orjson.JSONEncodeError:
            return None

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        data = None if kwargs else self._orjson(obj)
        return super().dumps(obj, **kwargs) if data is None else data.decode("utf-8")

    def response(self, *args: Any, **kwargs: Any) -> Any:
        data = self._orjson(self._prepare_response_obj(args, kwargs))
        if data is None:
            return super().response(*args, **kwargs)
        return self._app.response_class(data + b"\n", mimetype=self.mimetype)  # type: ignore[arg-type]
