"""The decision table and the other rules are data: a site changes the advice by editing a copy
of the knowledge folder, the loader refuses anything it cannot read exactly, and
``cds-service knowledge check`` says what an edit changes."""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from cds_service.app import create_app
from cds_service.config import Settings
from cds_service.knowledge import KnowledgeError, load_knowledge
from cds_service.knowledge.command import changes, check
from cds_service.knowledge.loader import DATA_DIR
from cds_service.replay.fixtures import substitute_dates

ROOT = Path(__file__).resolve().parents[2]
RADIUM_NO_FOLLOW_UP = ROOT / "fhir_fixtures" / "engine" / "79101-ra223-no-followup.json"
SIGN = "/cds-services/radioelement-order-sign"

LOCAL_RULE = '''[[rule]]
id = "site-local-iv-unlisted"
when = { therapy = "unsealed", route_kind = "iv", follow_up = false }
code = "79999"
alternatives = ["79101"]
reason = "our payer contract bills intravenous therapy without follow-up as unlisted"
source = "TEAM-JUDGEMENT"

'''


@pytest.fixture()
def data_copy(tmp_path: Path) -> Path:
    target = tmp_path / "knowledge"
    shutil.copytree(DATA_DIR, target)
    return target


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"test setup: {old!r} not in {path.name}"
    path.write_text(text.replace(old, new, 1))


def add_local_rule(folder: Path) -> None:
    edit(folder / "rules.toml", '[[rule]]\nid = "iv-with-follow-up"', LOCAL_RULE + '[[rule]]\nid = "iv-with-follow-up"')


def radium_request() -> dict:
    fixture = json.loads(RADIUM_NO_FOLLOW_UP.read_text())
    return substitute_dates(fixture["request"], date.today())


def recommended(app) -> list[str]:
    response = app.test_client().post(SIGN, json=radium_request())
    assert response.status_code == 200, response.get_data(as_text=True)
    return [d["recommendedCode"] for d in response.get_json()["extension"]["cds-service.decisions"]]


def settings_from(env: dict[str, str], tmp_path: Path) -> Settings:
    return Settings.from_env({"DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}", "CDS_AUTH": "off", **env})


# -- a site's own knowledge -----------------------------------------------------------------------

def test_a_rule_added_in_a_copy_loaded_by_cds_knowledge_dir_is_followed(data_copy: Path, tmp_path: Path) -> None:
    built_in = create_app(settings_from({}, tmp_path))
    assert recommended(built_in) == ["79101"]

    add_local_rule(data_copy)
    local = create_app(settings_from({"CDS_KNOWLEDGE_DIR": str(data_copy)}, tmp_path))
    assert local.extensions["cds_knowledge"].directory == str(data_copy)
    assert recommended(local) == ["79999"]
    card = local.test_client().post(SIGN, json=radium_request()).get_json()["cards"][0]
    assert "our payer contract bills intravenous therapy without follow-up as unlisted" in card["detail"]


def test_a_misspelt_key_stops_the_service_naming_file_entry_and_key(data_copy: Path, tmp_path: Path) -> None:
    edit(data_copy / "codes.toml", 'global_days = "090"', 'global_dayz = "090"')
    port = _free_port()
    env = {**os.environ, "CDS_KNOWLEDGE_DIR": str(data_copy), "CDS_AUTH": "off",
           "CDS_SQLITE_PATH": str(tmp_path / "serve.sqlite3"), "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics")}
    done = subprocess.run([sys.executable, "-m", "cds_service.cli", "serve", "--port", str(port), "--workers", "1"],
                          env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 2
    assert "codes.toml code '77750': unknown key 'global_dayz' (did you mean 'global_days'?)" in done.stderr
    assert "Traceback" not in done.stderr


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# -- the loader refuses what it cannot read exactly ------------------------------------------------

@pytest.mark.parametrize("file, old, new, message", [
    ("rules.toml", 'reason = "radiopharmaceutical given by mouth"', 'reasn = "radiopharmaceutical given by mouth"',
     "rules.toml rule 'oral': unknown key 'reasn' (did you mean 'reason'?)"),
    ("rules.toml", 'when = { therapy = "unsealed", route_kind = "oral" }',
     'when = { therapy = "unsealed", route = "oral" }', "rules.toml rule 'oral' when.route: unknown fact 'route'"),
    ("rules.toml", 'when = { therapy = "unsealed", route_kind = "oral" }',
     'when = { therapy = "unsealed", route_kind = "nasal" }',
     "rules.toml rule 'oral' when.route_kind: 'nasal' is not a value of 'route_kind'"),
    ("rules.toml", 'when = { therapy = "unsealed", route_kind = "oral" }',
     'when = { therapy = "unsealed", count = { atleast = 2 } }', "rules.toml rule 'oral' when.count: unknown test 'atleast'"),
    ("rules.toml", 'code = "79005"', 'code = "79006"', "rules.toml rule 'oral': code '79006' is not defined in codes.toml"),
    ("rules.toml", 'code = "79005"', 'code = "77785"', "rules.toml rule 'oral': code '77785' is deleted"),
    ("rules.toml", 'source = ["PPRRVU25D", "ACR-2004"]', 'source = ["PPRRVU25D", "ACR-2005"]',
     "rules.toml rule 'oral': source 'ACR-2005' is not defined in sources.toml"),
    ("rules.toml", 'id = "intra-articular"', 'id = "oral"', "rules.toml rule 'oral': rule id 'oral' is used twice"),
    ("rules.toml", 'reason = "radiopharmaceutical given by mouth"', 'reason = "given by {mouth}"',
     "rules.toml rule 'oral': reason names {mouth}, which is not a fact"),
    ("rules.toml", 'id = "route-unknown"\n', 'id = "route-unknown"\nwhen = { therapy = "unsealed" }\n',
     "the last rule must have no 'when'"),
    ("rules.toml", 'applicator = "heyman-capsules"', 'applicator = "heyman"', "'heyman' is not a value of 'applicator'"),
    ("rules.toml", 'unit = "per-dose"\nfixed_units = 1', 'unit = "per-dose"\nfixed_units = 1\nunits_per_mci = 2',
     "give exactly one of 'units_per_mci' or 'fixed_units'"),
    ("rules.toml", "follow_up_days = 90", "follow_up_dayz = 90", "rules.toml [windows]: unknown key 'follow_up_dayz'"),
    ("rules.toml", 'modifiers = ["26"]', 'modifiers = ["27"]', "modifier '27' is not one of 26, TC"),
    ("edits.toml", "lookback_days = 90", "lookback_dayz = 90", "edits.toml [global_period]: unknown key 'lookback_dayz'"),
    ("agents.toml", 'carrier = "antibody"', 'carier = "antibody"',
     "agents.toml agent 'y90-ibritumomab': unknown key 'carier' (did you mean 'carrier'?)"),
    ("payers.toml", 'pa_needed = "conditional"\nsource = "MEDICAL', 'pa_neded = "conditional"\nsource = "MEDICAL',
     "payers.toml payer 'medi-cal': unknown key 'pa_neded'"),
    ("documentation.toml", 'label = "3-month follow-up notes"', 'lable = "3-month follow-up notes"',
     "documentation.toml item 'follow-up-notes': unknown key 'lable'"),
])
def test_a_bad_rule_or_key_is_refused_naming_file_entry_and_key(data_copy: Path, file: str, old: str, new: str,
                                                                 message: str) -> None:
    edit(data_copy / file, old, new)
    with pytest.raises(KnowledgeError) as error:
        load_knowledge(data_copy)
    assert message in str(error.value)


def test_an_applicator_without_a_rule_for_its_insertion_is_refused(data_copy: Path) -> None:
    text = (data_copy / "rules.toml").read_text()
    start = text.index('[[rule]]\nid = "applicator-vaginal-cylinder"')
    end = text.index("[[rule]]", start + 1)
    (data_copy / "rules.toml").write_text(text[:start] + text[end:])
    with pytest.raises(KnowledgeError, match="routes.toml applicator 'vaginal-cylinder': no rule in rules.toml codes"):
        load_knowledge(data_copy)


def test_extra_data_files_in_the_folder_are_left_alone(data_copy: Path) -> None:
    (data_copy / "plain_words.toml").write_text('[anything]\nkey = "value"\n')
    assert load_knowledge(data_copy).code_rules == load_knowledge().code_rules


# -- the change report -----------------------------------------------------------------------------

def test_check_reports_added_removed_reordered_and_changed_rules(data_copy: Path) -> None:
    add_local_rule(data_copy)
    rules = data_copy / "rules.toml"
    edit(rules, 'code = "79005"', 'code = "79999"')  # the oral row's outcome changes
    text = rules.read_text()
    # remove the intra-articular row, and move the antibody row below the microspheres row
    start = text.index('[[rule]]\nid = "intra-articular"')
    text = text[:start] + text[text.index("[[rule]]", start + 1):]
    antibody_start = text.index('[[rule]]\nid = "antibody"')
    antibody_end = text.index("[[rule]]", antibody_start + 1)
    antibody = text[antibody_start:antibody_end]
    text = text[:antibody_start] + text[antibody_end:]
    after = text.index("[[rule]]", text.index('[[rule]]\nid = "microspheres"') + 1)
    rules.write_text(text[:after] + antibody + text[after:])

    out, err = io.StringIO(), io.StringIO()
    assert check(str(data_copy), out, err) == 0, err.getvalue()
    report = out.getvalue()
    assert "added     site-local-iv-unlisted" in report
    assert "code 79999 (alternatives 79101)" in report
    assert "removed   intra-articular: was code 79440" in report
    assert "outcome   oral: code 79005 -> code 79999" in report
    reordered = [line for line in report.splitlines() if "reordered" in line]
    assert len(reordered) == 1 and "antibody" in reordered[0]


def test_check_of_the_built_in_folder_reports_no_change() -> None:
    built_in = load_knowledge()
    assert changes(built_in, built_in) == [
        "Decision table (rules.toml [[rule]]):", "  no change", "Modifier rules (rules.toml [[modifier]]):", "  no change"]


def test_check_of_a_broken_copy_fails_with_the_reason(data_copy: Path) -> None:
    edit(data_copy / "rules.toml", 'code = "79005"', 'code = "79006"')
    out, err = io.StringIO(), io.StringIO()
    assert check(str(data_copy), out, err) == 1
    assert "rules.toml rule 'oral': code '79006' is not defined in codes.toml" in err.getvalue()


def test_the_cli_runs_the_check(data_copy: Path) -> None:
    add_local_rule(data_copy)
    done = subprocess.run([sys.executable, "-m", "cds_service.cli", "knowledge", "check", str(data_copy)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "added     site-local-iv-unlisted" in done.stdout
