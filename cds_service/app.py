"""Application factory: wires settings, storage, knowledge and engine into a Flask app."""

from __future__ import annotations

from flask import Flask

from cds_service import engine
from cds_service.config import Settings
from cds_service.fhir import speedups
from cds_service.fhir.parsing import preload_models
from cds_service.hooks.envelope import fast_request_check
from cds_service.hooks.pipeline import HookHandler
from cds_service.knowledge import Knowledge, load_knowledge
from cds_service.ops import web as ops_web
from cds_service.ops.logs import configure_logging
from cds_service import dashboard, library, pages
from cds_service.schemas import SCHEMA_FILES, validator
from cds_service.security.replay import LocalJtiCache, ReplayCache, jti_table
from cds_service.security.web import install_security
from cds_service.storage.db import make_engine, metadata as db_metadata, migrate
from cds_service.storage.outbox import Outbox
from cds_service.storage.records import Store
from cds_service.web import discovery, feedback, openapi, services
from cds_service.web.cors import register_cors
from cds_service.web.jsonio import OrjsonProvider
from cds_service.web.errors import register_error_handlers


def create_app(settings: Settings | None = None, knowledge: Knowledge | None = None) -> Flask:
    """Build the service. Everything costly (knowledge, schemas, database) happens here, once."""
    settings = settings or Settings.from_env()
    configure_logging(settings.log_level, settings.log_format)  # the one log set-up, before anything logs

    app = Flask(__name__)
    app.config["CDS_SETTINGS"] = settings
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json = OrjsonProvider(app)  # the standard library's JSON, written by orjson (web/jsonio.py)
    app.json.sort_keys = False  # type: ignore[attr-defined]  # keep cards in the order the engine ranked them
    app.json.compact = True  # type: ignore[attr-defined]

    database = make_engine(settings.database_url, settings.sqlite_busy_timeout, True)  # background WAL checkpoints
    jti_table(db_metadata)  # on the shared metadata first, so migrate creates it under its lock
    migrate(database)
    knowledge = knowledge or load_knowledge(settings.knowledge_dir)
    if not settings.fhir_speedups:
        speedups.disable()  # CDS_FHIR_SPEEDUPS=off: fhir.resources' own code, to compare
    preload_models()  # fhir.resources models and compiled JSON Schemas: built before workers fork
    for schema in SCHEMA_FILES:
        validator(schema)
    fast_request_check()  # the request schema compiled to plain checks, also before the fork

    app.extensions["cds_db"] = database
    # While the database is away, records wait in the durable spool; each gunicorn
    # worker starts its flusher after the fork (cds_service.serve), any process when it spools.
    outbox = Outbox(database, settings.spool_path(), settings.spool_max_bytes)
    app.extensions["cds_outbox"] = outbox
    app.extensions["cds_store"] = Store(database, outbox)
    app.extensions["cds_knowledge"] = knowledge
    app.extensions["cds_handler"] = HookHandler(settings, knowledge, engine.advise, engine.relevant)
    # JWT authentication, trusted issuers, profiles and the per-caller FHIR URL guard.
    # Raises ConfigError when the security configuration must not start (e.g. production with
    # no trusted issuer); also sets app.extensions["cds_url_guard_for"].
    # The jti replay check falls back to a per-host cache in the spool folder during an outage,
    # and the spool carries the accepted ids to the database afterwards (README, Security).
    local_jti = LocalJtiCache(settings.spool_path() / "jti")
    replay_cache = None
    if settings.auth_enabled:
        replay_cache = ReplayCache(database, db_metadata, local=local_jti, outage=outbox, catch_up=outbox.spool_jti)
        outbox.periodic.append(local_jti.maybe_purge)
    install_security(app, settings, database, db_metadata, replay_cache=replay_cache)

    ops_web.init_app(app)  # logging, metrics, /healthz /readyz /metrics (unauthenticated)
    outbox.observer = app.extensions["cds_metrics"]
    register_cors(app)
    register_error_handlers(app)
    pages.init_app(app)  # the page layout, its style sheet and the page CSP
    dashboard.init_app(app, settings)  # /dashboard; its own access rule, never the EHR's JWT
    library.init_app(app)  # /library pages; loads and checks library.toml and plain_words.toml now
    for module in (discovery, services, feedback, openapi):
        app.register_blueprint(module.blueprint)
    return app
