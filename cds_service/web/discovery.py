"""GET /cds-services: the discovery document."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, request

from cds_service.hooks.catalog import discovery_document
from cds_service.web.auth import authenticate

blueprint = Blueprint("discovery", __name__)


@blueprint.get("/cds-services")
def discovery() -> Response:
    # Discovery lists no patient data. A token that is sent is always verified (the Sandbox
    # sends one); a call without one is let through unless CDS_DISCOVERY_AUTH=required, because
    # conformance testers such as Inferno call discovery without a JWT by default.
    if "Authorization" in request.headers or current_app.config["CDS_SETTINGS"].discovery_token_required:
        authenticate()
    return jsonify(discovery_document())
