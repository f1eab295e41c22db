"""The JSON shape limits (depth, array length, object size, value count) after the faster walk."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import scenarios  # noqa: E402

from cds_service.security.web import JsonLimitError, check_json_limits  # noqa: E402


def reference_verdict(value: Any, max_depth: int, max_array: int, max_object_keys: int, max_nodes: int) -> bool:
    """The first implementation (a node-by-node stack walk), kept as the oracle: True = accepted."""
    stack = [(value, 1)]
    nodes = 0
    while stack:
        item, depth = stack.pop()
        nodes += 1
        if nodes > max_nodes:
            return False
        if isinstance(item, (dict, list)):
            if depth > max_depth:
                return False
            if isinstance(item, dict) and len(item) > max_object_keys:
                return False
            if isinstance(item, list) and len(item) > max_array:
                return False
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return True


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=3),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=2), children, max_size=5),
    max_leaves=40,
)


@settings(max_examples=400, deadline=None)
@given(value=json_values, depth=st.integers(1, 5), array=st.integers(0, 5), keys=st.integers(0, 5), nodes=st.integers(1, 40))
def test_same_verdict_as_the_node_by_node_walk(value, depth, array, keys, nodes) -> None:
    try:
        check_json_limits(value, max_depth=depth, max_array=array, max_object_keys=keys, max_nodes=nodes)
        accepted = True
    except JsonLimitError:
        accepted = False
    assert accepted == reference_verdict(value, depth, array, keys, nodes)


def nested(levels: int) -> Any:
    value: Any = 1
    for index in range(levels):
        value = [value] if index % 2 else {"a": value}
    return value


@pytest.mark.parametrize(
    ("value", "limits", "message"),
    [
        (nested(5), {"max_depth": 4}, "nested deeper than 4 levels"),
        ({"a": list(range(11))}, {"max_array": 10}, "array in the body has more than 10 items"),
        ({"a": {str(i): i for i in range(4)}}, {"max_object_keys": 3}, "object in the body has more than 3 members"),
        ([[1, 2], [3, 4]], {"max_nodes": 6}, "more than 6 values"),
    ],
)
def test_each_limit_is_enforced(value, limits, message) -> None:
    with pytest.raises(JsonLimitError, match=message):
        check_json_limits(value, **limits)
    check_json_limits(value)  # within the default limits


def test_exact_limits_are_accepted() -> None:
    check_json_limits(nested(4), max_depth=4)  # 4 nested containers, the scalar inside is a leaf
    check_json_limits([[1, 2], [3, 4]], max_nodes=7)
    check_json_limits(list(range(10)), max_array=10)
    check_json_limits("just a string", max_depth=1, max_nodes=1)


def test_a_ten_thousand_resource_chart_is_within_the_default_limits() -> None:
    check_json_limits(json.loads(scenarios.encode(scenarios.big_chart_request(10_000))))
