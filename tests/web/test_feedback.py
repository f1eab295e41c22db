"""Feedback is validated, stored durably, and still there after the app is recreated."""

from __future__ import annotations

SIGN = "/cds-services/radioelement-order-sign"


def feedback_body(card: str = "5b3e5a4e-1111-4d7e-9f00-0123456789ab") -> dict:
    return {
        "feedback": [
            {"card": card, "outcome": "accepted", "acceptedSuggestions": [{"id": "sugg-1"}],
             "outcomeTimestamp": "2026-11-27T10:05:31Z"},
            {"card": card, "outcome": "overridden", "outcomeTimestamp": "2026-11-27T10:06:00Z",
             "overrideReason": {"reason": {"code": "payer-policy", "system": "https://example.org/override"},
                                "userComment": "payer requires 79101"}},
        ]
    }


def test_feedback_survives_app_recreation(make_app):
    first = make_app()
    response = first.test_client().post(SIGN + "/feedback", json=feedback_body())
    assert response.status_code == 200 and response.get_json() == {"stored": 2}
    second = make_app()  # same database file, new app: as after a restart
    rows = second.extensions["cds_store"].feedback_for_card("5b3e5a4e-1111-4d7e-9f00-0123456789ab")
    assert [row["outcome"] for row in rows] == ["accepted", "overridden"]
    assert rows[0]["accepted_suggestions"] == ["sugg-1"]
    assert rows[1]["override_code"] == "payer-policy"


def test_feedback_missing_outcome_is_400_naming_field(client):
    body = feedback_body()
    del body["feedback"][0]["outcome"]
    response = client.post(SIGN + "/feedback", json=body)
    assert response.status_code == 400
    assert "outcome" in response.get_json()["error"]


def test_accepted_feedback_needs_suggestions(client):
    body = {"feedback": [{"card": "c", "outcome": "accepted", "outcomeTimestamp": "2026-11-27T10:05:31Z"}]}
    response = client.post(SIGN + "/feedback", json=body)
    assert response.status_code == 400 and "acceptedSuggestions" in response.get_json()["error"]


def test_feedback_to_unknown_service_is_404(client):
    assert client.post("/cds-services/none/feedback", json=feedback_body()).status_code == 404


def test_bad_timestamp_is_400(client):
    body = feedback_body()
    body["feedback"][0]["outcomeTimestamp"] = "yesterday"
    assert client.post(SIGN + "/feedback", json=body).status_code == 400
