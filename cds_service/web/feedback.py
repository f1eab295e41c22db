"""POST /cds-services/<id>/feedback: store what clinicians did with the cards."""

from __future__ import annotations

from datetime import datetime

from flask import Blueprint, Response, current_app, jsonify

from cds_service.ops.calls import observe_feedback
from cds_service.schemas import first_error
from cds_service.storage.records import StorageUnavailable, Store
from cds_service.web.auth import authenticate
from cds_service.web.body import json_body
from cds_service.web.errors import ApiError
from cds_service.web.services import find_service

blueprint = Blueprint("feedback", __name__)

# While the database is away, feedback is acknowledged only once it is fsynced in the spool; when
# the spool cannot take it either (full, unwritable disk) the EHR is asked to send it again later.
RETRY_AFTER_SECONDS = "30"


@blueprint.post("/cds-services/<service_id>/feedback")
def post_feedback(service_id: str) -> Response:
    caller = authenticate()  # first: an unauthenticated caller learns nothing, not even 404
    service = find_service(service_id)
    body = json_body()
    problem = first_error("feedback", body)
    if problem is not None:
        raise ApiError(400, f"feedback does not follow CDS Hooks 2.0: {problem}")
    for index, item in enumerate(body["feedback"]):
        try:  # the schema checks the shape; an impossible date (Feb 30, 25:61) would be a 500
            datetime.fromisoformat(item["outcomeTimestamp"].replace("Z", "+00:00"))
        except ValueError:
            raise ApiError(400, f"feedback[{index}].outcomeTimestamp is not a valid RFC 3339 date-time") from None
    store: Store = current_app.extensions["cds_store"]
    try:
        stored = store.add_feedback(service.id, body["feedback"], issuer=caller.iss if caller else None)
    except StorageUnavailable:
        raise ApiError(503, "feedback cannot be stored right now (database unavailable and spool full); "
                       "nothing was kept, send it again later", {"Retry-After": RETRY_AFTER_SECONDS}) from None
    observe_feedback(service.id, body["feedback"])
    return jsonify({"stored": stored})
