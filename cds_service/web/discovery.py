"""GET /cds-services: the discovery document."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from cds_service.hooks.catalog import discovery_document
from cds_service.web.auth import authenticate

blueprint = Blueprint("discovery", __name__)


@blueprint.get("/cds-services")
def discovery() -> Response:
    authenticate()
    return jsonify(discovery_document())
