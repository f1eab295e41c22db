"""Save incoming hook calls as fixtures (opt-in: ``CDS_RECORD_DIR`` or ``cds-service serve --record``).

Each request becomes ``<dir>/<service-id>/<UTC time>-<hookInstance>.json``: a fixture without
expectation that ``cds-service replay`` runs and prints, and that ``--write-expected`` completes.
Credentials never reach the disk: ``fhirAuthorization`` and any ``access_token``, ``id_token``,
``refresh_token`` or ``client_secret`` anywhere in the body are dropped. ``fhirServer`` is moved
out of the request to ``recorded_fhir_server`` so a replay never calls the EHR's server.
The files hold patient data: they are written readable by the owner only.
"""

from __future__ import annotations

import json
import logging
import os
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SECRET_KEYS = frozenset({"fhirAuthorization", "access_token", "id_token", "refresh_token", "client_secret", "password"})
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def strip_secrets(value: Any) -> Any:
    """A copy of a JSON value without any key that carries a credential."""
    if isinstance(value, dict):
        return {key: strip_secrets(item) for key, item in value.items() if key not in SECRET_KEYS}
    if isinstance(value, list):
        return [strip_secrets(item) for item in value]
    return value


def fixture_for(service_id: str, body: dict[str, Any], now: datetime | None = None) -> dict[str, Any]:
    now = now or datetime.now(timezone.utc)
    request = strip_secrets(body)
    document: dict[str, Any] = {
        "description": f"recorded call to {service_id} at {now.isoformat(timespec='seconds')}",
        "service": service_id,
        "recorded_at": now.isoformat(timespec="seconds"),
    }
    server = request.pop("fhirServer", None)
    if isinstance(server, str):
        document["recorded_fhir_server"] = server
    document["request"] = request
    return document


def record_request(record_dir: str | os.PathLike[str], service_id: str, body: Any) -> Path | None:
    """Write one request as a fixture; never raises (recording must not break the hook call)."""
    if not isinstance(body, dict):
        return None
    try:
        now = datetime.now(timezone.utc)
        folder = Path(record_dir) / _SAFE.sub("_", service_id)
        folder.mkdir(parents=True, exist_ok=True)
        instance = body.get("hookInstance")
        suffix = _SAFE.sub("_", instance)[:64] if isinstance(instance, str) and instance else "no-instance"
        target = folder / f"{now.strftime('%Y%m%dT%H%M%S.%fZ')}-{suffix}.json"
        text = json.dumps(fixture_for(service_id, body, now), indent=2, ensure_ascii=False) + "\n"
        temporary = target.with_name(f".{target.name}.tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temporary, target)
        return target
    except Exception:  # a full disk or a bad folder must not cost the EHR its answer
        log.exception("could not record the request to %s", record_dir)
        return None
