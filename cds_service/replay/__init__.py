"""Replay recorded CDS Hooks calls and patient records through the service.

``cds-service replay PATH...`` finds fixtures (see ``fhir_fixtures/README.md``) and patient
Bundles under the paths, sends each one to the service (in process, or to ``--url``), compares
the ``extension["cds-service.decisions"]`` it gets back with the fixture's expectation and
reports the result. The pieces:

- :mod:`.fixtures`: finding, loading and validating fixture files; writing expectations
- :mod:`.bundle`: a patient's FHIR Bundle turned into an order-sign request
- :mod:`.compare`: decisions compared field by field, with readable differences
- :mod:`.runner`: transports (in process, HTTP) and the FHIR stand-in for fallback fixtures
- :mod:`.report`: progress bar, summary table, JSON and JUnit reports
- :mod:`.recorder`: saving live requests as fixtures (``--record`` / ``CDS_RECORD_DIR``)
- :mod:`.command`: the ``replay`` sub-command
"""
