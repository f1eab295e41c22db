"""Answers remembered across calls, for functions of an immutable owner and a small key.

Why: EHRs send the same drug names and the same lab codes again and again, and some answers
(which agent a text names, which evidence groups a code set belongs to) cost dozens of regular
expressions or set lookups each time. The answer depends only on the owner (the knowledge, or its
agent matcher, which never change once loaded) and the key, so it can be remembered.

Only the latest owner's answers are kept, so a process that loads another knowledge (the tests)
drops the old answers with it; at most ``size`` keys are kept, and the memo is emptied when full.
Owner and answers are swapped as one tuple, so a thread never files an answer under the wrong owner.
"""

from __future__ import annotations

from typing import Callable, Generic, Hashable, TypeVar

Owner = TypeVar("Owner")
Key = TypeVar("Key", bound=Hashable)
Answer = TypeVar("Answer")


class Memo(Generic[Owner, Key, Answer]):
    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._state: tuple[Owner | None, dict[Key, Answer]] = (None, {})

    def get(self, owner: Owner, key: Key, compute: Callable[[Key], Answer]) -> Answer:
        """``compute(key)`` for this owner, computed once while remembered."""
        current, answers = self._state
        if current is not owner:
            answers = {}
            self._state = (owner, answers)
        try:
            return answers[key]
        except KeyError:
            pass
        if len(answers) >= self.size:
            answers.clear()
        answer = answers[key] = compute(key)
        return answer
