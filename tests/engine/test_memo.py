"""engine/memo.py: remembered answers are the computed ones, per owner, and bounded."""

from __future__ import annotations

from cds_service.engine.memo import Memo


class Owner:
    pass


def test_an_answer_is_computed_once_per_owner_and_key() -> None:
    calls: list[str] = []

    def compute(key: str) -> str | None:
        calls.append(key)
        return None if key == "statin" else key.upper()

    memo: Memo[Owner, str, str | None] = Memo()
    owner = Owner()
    assert memo.get(owner, "xofigo", compute) == "XOFIGO"
    assert memo.get(owner, "xofigo", compute) == "XOFIGO"
    assert memo.get(owner, "statin", compute) is None
    assert memo.get(owner, "statin", compute) is None  # a remembered None is not recomputed
    assert calls == ["xofigo", "statin"]


def test_another_owner_never_gets_the_first_owners_answers() -> None:
    memo: Memo[Owner, str, str] = Memo()
    first, second = Owner(), Owner()
    assert memo.get(first, "k", lambda key: "first") == "first"
    assert memo.get(second, "k", lambda key: "second") == "second"
    assert memo.get(first, "k", lambda key: "first again") == "first again"  # only the latest owner is kept


def test_the_memo_is_bounded() -> None:
    memo: Memo[Owner, int, int] = Memo(size=3)
    owner = Owner()
    calls: list[int] = []

    def square(key: int) -> int:
        calls.append(key)
        return key * key

    for key in range(10):
        assert memo.get(owner, key, square) == key * key
    assert len(memo._state[1]) <= 3
    assert memo.get(owner, 9, square) == 81 and calls.count(9) == 1
