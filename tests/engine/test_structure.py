"""The engine is an evaluator of the knowledge, and each name of the contract is declared once.

These tests read the source and the data: a CPT code written into Python, an import from the web
layer into the hook plumbing, a vocabulary drifting between modules, or a README table that no
longer matches the decision table fails here.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from cds_service.engine import coding
from cds_service.engine.facts import TherapyOrder
from cds_service.hooks import catalog
from cds_service.knowledge import load_knowledge
from cds_service.knowledge import vocabulary as vocab

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "cds_service"
# CPT Category I (five digits), Category III (four digits and T), HCPCS Level II (a letter, four
# digits). A LOINC code such as 21908-9 is not one: it is followed by a check digit.
CODE_LITERAL = re.compile(r"\b\d{4}[\dT]\b(?!-\d)|\b[A-V]\d{4}\b")


@pytest.fixture(scope="module")
def knowledge():
    return load_knowledge()


def _sources(*folders: str) -> list[Path]:
    return sorted(path for folder in folders for path in (PACKAGE / folder).rglob("*.py"))


def test_no_cpt_or_hcpcs_code_is_written_into_the_engine_or_the_hooks() -> None:
    found = [f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
             for path in _sources("engine", "hooks")
             for number, line in enumerate(path.read_text().splitlines(), 1) if CODE_LITERAL.search(line)]
    assert found == []


def test_the_code_literal_pattern_catches_each_kind_of_code() -> None:
    for text in ("CPT 77750", "code '0394T'", "HCPCS A9606", "(79101)"):
        assert CODE_LITERAL.search(text), text
    for text in ("LOINC 21908-9", "snomed 399390009", "SUMMARY_LIMIT = 139"):
        assert not CODE_LITERAL.search(text), text


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("folder, forbidden", [
    ("hooks", ("cds_service.web", "flask")),
    ("engine", ("cds_service.web", "flask", "cds_service.storage", "cds_service.hooks.pipeline")),
    ("knowledge", ("cds_service.web", "cds_service.engine", "cds_service.hooks", "flask")),
])
def test_lower_layers_import_nothing_from_the_upper_ones(folder: str, forbidden: tuple[str, ...]) -> None:
    offending = [f"{path.relative_to(ROOT)} imports {name}" for path in _sources(folder)
                 for name in _imports(path) if name.startswith(forbidden)]
    assert offending == []


def test_the_engine_states_exactly_the_facts_the_rules_may_test(knowledge) -> None:
    order = TherapyOrder(reference="ServiceRequest/x", resource={}, members=("ServiceRequest/x",),
                         when=__import__("datetime").date(2025, 1, 1))
    assert set(coding.order_facts(order, False, knowledge)) == set(vocab.ORDER_FACTS)


def test_every_vocabulary_is_the_same_everywhere(knowledge) -> None:
    assert set(knowledge.doc_items) == set(vocab.DOC_KEYS)
    assert set(vocab.DOC_DEPENDS_ON) <= set(vocab.DOC_KEYS)
    assert set(vocab.WARNINGS) == set(vocab.WARNING_KEYS)
    assert set(vocab.WARNING_DEPENDS_ON) <= set(vocab.WARNING_KEYS)
    assert {kind.topic for kind in vocab.WARNINGS.values()} <= set(vocab.CRD_CARD_TYPES)
    assert set(catalog.CARD_TYPE_OPTIONS) == set(vocab.CRD_CARD_TYPES)
    assert set(catalog.CHECKS_BY_KEY) == set(vocab.PREFETCH_KEYS)
    assert set(catalog.ORDER_SIGN_PREFETCH) == set(vocab.PREFETCH_KEYS)
    assert set(catalog.ORDER_SELECT_PREFETCH) <= set(vocab.PREFETCH_KEYS)
    depends = {key for keys in (*vocab.DOC_DEPENDS_ON.values(), *vocab.WARNING_DEPENDS_ON.values()) for key in keys}
    assert depends | vocab.CORE_PREFETCH_KEYS | {vocab.WEIGHT_PREFETCH_KEY} <= set(vocab.PREFETCH_KEYS)


def test_every_warning_the_engine_raises_is_a_declared_key() -> None:
    tree = ast.parse((PACKAGE / "engine" / "edits.py").read_text())
    raised = {node.args[0].value for node in ast.walk(tree)
              if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Warning"
              and node.args and isinstance(node.args[0], ast.Constant)}
    assert raised == set(vocab.WARNING_KEYS)


def test_the_readme_decision_table_names_the_codes_the_rules_recommend(knowledge) -> None:
    readme = (ROOT / "README.md").read_text()
    start = readme.index("| the order | code | offered instead |")
    table = readme[start:readme.index("\n\n", start)].splitlines()[2:]
    in_readme = {code for row in table for code in CODE_LITERAL.findall(row.split("|")[2])}
    in_rules = {rule.code for rule in knowledge.code_rules if rule.code}
    assert in_readme == in_rules


def test_every_rule_is_reachable(knowledge) -> None:
    """A row after a row that always holds (or repeats an earlier row's conditions) is dead."""
    seen: list[tuple] = []
    for rule in knowledge.code_rules:
        assert rule.when not in seen, f"rule {rule.id!r} can never match: an earlier row has the same conditions"
        seen.append(rule.when)
    assert all(rule.when for rule in knowledge.code_rules[:-1])


def test_the_guide_for_coding_specialists_lists_every_fact() -> None:
    guide = (ROOT / "docs" / "knowledge.md").read_text()
    for fact in (*vocab.ORDER_FACTS, *vocab.BILLING_FACTS):
        assert f"`{fact}`" in guide, fact
