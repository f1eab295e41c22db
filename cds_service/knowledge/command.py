"""``cds-service knowledge check DIR``: validate an edited copy of the knowledge folder and say
what it changes against the built-in rules, before a site points ``CDS_KNOWLEDGE_DIR`` at it."""

from __future__ import annotations

import argparse
import sys
from typing import Sequence, TextIO

from cds_service.knowledge.loader import DATA_DIR, KnowledgeError, load_knowledge
from cds_service.knowledge.model import CodeRule, Condition, Knowledge, ModifierRule


def _value(value: object) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def _condition_text(condition: Condition) -> str:
    parts = []
    if condition.one_of:
        parts.append(" or ".join(_value(value) for value in condition.one_of))
    if condition.none_of:
        parts.append("not " + " or ".join(_value(value) for value in condition.none_of))
    if condition.known is not None:
        parts.append("stated" if condition.known else "not stated")
    for name, bound in (("at least", condition.min), ("at most", condition.max), ("above", condition.above),
                        ("below", condition.below)):
        if bound is not None:
            parts.append(f"{name} {bound:g}")
    return f"{condition.fact} {', '.join(parts)}"


def when_text(when: tuple[Condition, ...]) -> str:
    """A row's conditions in words, for the change report."""
    return "; ".join(_condition_text(condition) for condition in when) or "always"


def outcome_text(rule: CodeRule | ModifierRule) -> str:
    if isinstance(rule, ModifierRule):
        return "modifiers " + (", ".join(rule.modifiers) or "none")
    text = f"code {rule.code}" if rule.code else "keep the ordered code"
    if rule.alternatives:
        text += f" (alternatives {', '.join(rule.alternatives)})"
    return text


def _moved(before: list[str], after: list[str]) -> list[str]:
    """The ids of rows that changed place: those outside the longest run kept in the same order."""
    common = [rule_id for rule_id in after if rule_id in before]
    position = {rule_id: index for index, rule_id in enumerate(before)}
    sequence = [position[rule_id] for rule_id in common]
    # Longest increasing subsequence (quadratic is plenty for a few hundred rows).
    best: list[list[int]] = []
    for index, value in enumerate(sequence):
        longest = max((chain for chain in best if sequence[chain[-1]] < value), key=len, default=[])
        best.append(longest + [index])
    kept = {common[index] for index in max(best, key=len, default=[])}
    return [rule_id for rule_id in common if rule_id not in kept]


def _table_changes(title: str, before: Sequence[CodeRule | ModifierRule],
                   after: Sequence[CodeRule | ModifierRule]) -> list[str]:
    old = {rule.id: rule for rule in before}
    new = {rule.id: rule for rule in after}
    lines: list[str] = []
    for index, rule in enumerate(after):
        if rule.id not in old:
            lines.append(f"  added     {rule.id} (row {index + 1}): when {when_text(rule.when)} -> {outcome_text(rule)}")
    for rule in before:
        if rule.id not in new:
            lines.append(f"  removed   {rule.id}: was {outcome_text(rule)}")
    for rule_id in _moved([rule.id for rule in before], [rule.id for rule in after]):
        lines.append(f"  reordered {rule_id}: row {list(old).index(rule_id) + 1} -> row {list(new).index(rule_id) + 1}")
    for rule in after:
        previous = old.get(rule.id)
        if previous is None:
            continue
        if outcome_text(previous) != outcome_text(rule):
            lines.append(f"  outcome   {rule.id}: {outcome_text(previous)} -> {outcome_text(rule)}")
        if previous.when != rule.when:
            lines.append(f"  condition {rule.id}: {when_text(previous.when)} -> {when_text(rule.when)}")
        if isinstance(rule, CodeRule) and isinstance(previous, CodeRule) and (
                previous.reason, previous.uncertain) != (rule.reason, rule.uncertain):
            lines.append(f"  wording   {rule.id}: the reason or the uncertainty shown on the card changed")
    return [f"{title}:"] + (lines or ["  no change"])


def _keyed_changes(title: str, before: Sequence[str], after: Sequence[str]) -> list[str]:
    added = [key for key in after if key not in before]
    removed = [key for key in before if key not in after]
    if not added and not removed:
        return []
    return [f"{title}: " + "; ".join(part for part in (
        f"added {', '.join(added)}" if added else "", f"removed {', '.join(removed)}" if removed else "") if part)]


def changes(built_in: Knowledge, edited: Knowledge) -> list[str]:
    """What ``edited`` changes against ``built_in``, one line per change, in words."""
    lines = _table_changes("Decision table (rules.toml [[rule]])", built_in.code_rules, edited.code_rules)
    lines += _table_changes("Modifier rules (rules.toml [[modifier]])", built_in.modifier_rules, edited.modifier_rules)
    lines += _keyed_changes("Codes", list(built_in.codes), list(edited.codes))
    lines += _keyed_changes("Agents", list(built_in.agents), list(edited.agents))
    lines += _keyed_changes("Payer policies", sorted({p.key for p in built_in.payers.values()}),
                            sorted({p.key for p in edited.payers.values()}))
    if built_in.windows != edited.windows:
        lines.append(f"Time windows: {built_in.windows} -> {edited.windows}")
    return lines


def check(directory: str, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """0 when the folder loads (and the changes are printed), 1 when it does not."""
    try:
        edited = load_knowledge(directory)
    except KnowledgeError as error:
        print(f"{directory}: {error}", file=err)
        return 1
    built_in = load_knowledge(DATA_DIR)
    print(f"{directory}: valid ({len(edited.code_rules)} decision rows, {len(edited.modifier_rules)} modifier rows, "
          f"{len(edited.codes)} codes, {len(edited.agents)} agents; version {edited.version})", file=out)
    print("Changes against the built-in knowledge:", file=out)
    for line in changes(built_in, edited):
        print(line, file=out)
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser("knowledge", help="work with the coding knowledge files")
    actions = parser.add_subparsers(dest="action", required=True)
    checker = actions.add_parser(
        "check", help="validate a copy of the knowledge folder and print what it changes against the built-in rules")
    checker.add_argument("directory", metavar="DIR", help="the edited copy of cds_service/knowledge/data")
    checker.set_defaults(handler=lambda args: check(args.directory))
