"""web/jsonio.py: orjson where it gives the same document as the standard library, json elsewhere."""

from __future__ import annotations

import json
import math
from datetime import date, datetime, timezone
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st

from cds_service.web import jsonio


@pytest.mark.parametrize("raw", [
    b'{"a":1,"a":2}', b"-0", b"[1.0, 2.5e3, -7]", b'{"x":"\\u00e9\\ud83d\\ude00"}', b'"\\ud800"',
    b"123456789012345678901234567890", b'{"big": -98765432109876543210}', b'{"a":1e-400}', b"1e400",
    b"\xef\xbb\xbf{}", '{"a": "\u00e9"}'.encode("utf-16"), b" {} ", b'{"id":"1234567890123456789"}',
])
def test_odd_bodies_parse_as_the_standard_library_parses_them(raw: bytes) -> None:
    expected = json.loads(raw)
    got = jsonio.loads(raw)
    assert type(got) is type(expected)
    assert json.dumps(got) == json.dumps(expected)  # big integers stay integers, inf stays inf


@pytest.mark.parametrize("raw", [b"NaN", b'{"a": Infinity}', b"{", b'{"a":}', b"\xff", b"[" * 5000 + b"]" * 5000])
def test_what_json_refuses_is_refused_with_its_own_error(raw: bytes) -> None:
    with pytest.raises((ValueError, RecursionError)) as standard:
        json.loads(raw, parse_constant=jsonio._reject_constant)
    with pytest.raises((ValueError, RecursionError)) as ours:
        jsonio.loads(raw)
    assert type(ours.value) is type(standard.value) and str(ours.value) == str(standard.value)


json_documents = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(json_documents)
def test_any_document_reads_back_the_same(document: Any) -> None:
    raw = json.dumps(document).encode("utf-8")
    assert jsonio.loads(raw) == json.loads(raw)
    assert json.dumps(jsonio.loads(raw)) == json.dumps(json.loads(raw))


def test_responses_hold_the_same_json_and_flask_formats_dates(app: Any) -> None:
    document = {"b": 1, "a": [1.5, None, True, "\u00e9"], "when": datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc),
                "day": date(2026, 1, 2), 3: "int key"}
    with app.app_context():
        written = app.json.dumps(document)
        expected = json.dumps(document, default=app.json.default, separators=(",", ":"), ensure_ascii=True)
        assert json.loads(written) == json.loads(expected)
        assert list(json.loads(written)) == ["b", "a", "when", "day", "3"]  # insertion order kept
        response = app.json.response(document)
        assert response.mimetype == "application/json"
        assert json.loads(response.get_data()) == json.loads(expected)
        assert not math.isnan(json.loads(written)["a"][0])


def test_a_document_orjson_cannot_write_is_written_by_json(app: Any) -> None:
    document = {"big": -(2**70), "list": [2**64]}
    with app.app_context():
        assert json.loads(app.json.dumps(document)) == document
        assert json.loads(app.json.response(document).get_data()) == document
