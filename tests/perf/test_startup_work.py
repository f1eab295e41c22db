"""Costly one-time work happens when the app is built (in gunicorn's master), not on a call."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

PROBE = """
import json, sys, tempfile
from cds_service.app import create_app
from cds_service.config import Settings
from cds_service.fhir.parsing import CALL_RESOURCE_TYPES
from cds_service.schemas import SCHEMA_FILES, validator
create_app(Settings(database_url=f"sqlite:///{tempfile.mkdtemp()}/x.sqlite3", auth_enabled=False, log_level="ERROR"))
print(json.dumps({
    "missing_models": [t for t in CALL_RESOURCE_TYPES if f"fhir.resources.R4B.{t.lower()}" not in sys.modules],
    "schemas": validator.cache_info().currsize,
    "expected_schemas": len(SCHEMA_FILES),
}))
"""


def test_models_and_schemas_are_built_when_the_app_is_created() -> None:
    # A fresh interpreter: in this one, other tests have long since imported everything.
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120,
                            cwd=Path(__file__).resolve().parents[2])
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["missing_models"] == []
    assert report["schemas"] == report["expected_schemas"]


def test_the_bundled_schemas_are_valid_json_schema() -> None:
    """Checked here rather than when the service starts."""
    from jsonschema import Draft202012Validator

    from cds_service.schemas import SCHEMA_FILES, validator

    for name in SCHEMA_FILES:
        Draft202012Validator.check_schema(validator(name).schema)
