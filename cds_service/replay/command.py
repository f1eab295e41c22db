"""``cds-service replay PATH...``: replay fixtures and patient Bundles, compare, report."""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from datetime import date
from typing import Any

from cds_service.config import Settings
from cds_service.security.dev_issuer import DevIssuerError, load_dev_issuer
from cds_service.replay.fixtures import ORDER_SIGN, SERVICE_BY_HOOK, discover, expectation_from, write_expectation
from cds_service.replay.report import (
    Progress, json_report, junit_xml, result_lines, summary_table, write_json_report, write_text,
)
from cds_service.replay.runner import HttpTransport, InProcessTransport, Result, Runner, Transport

DESCRIPTION = """\
Replay CDS Hooks fixtures (see fhir_fixtures/README.md) and patient FHIR Bundles through the
service and compare the decisions with each fixture's expectation. Runs in process on a
temporary SQLite database with authentication off, or against a running service with --url.
Exit status: 0 when every fixture passed, 1 when any failed or could not run, 2 on bad usage."""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "replay", help="replay fixtures and patient bundles, compare with expectations",
        description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("paths", nargs="*", metavar="PATH", help="fixture files, patient Bundles or folders of them")
    parser.add_argument("--print-request", metavar="FIXTURE",
                        help="print FIXTURE's request as a plain CDS Hooks request (date tokens resolved, a fresh "
                             "hookInstance) for curl or the Sandbox, and exit")
    parser.add_argument("--url", help="replay against this running service (e.g. http://127.0.0.1:8080) instead of in process")
    parser.add_argument("--token", default=None,
                        help="Bearer token sent with --url (default: $CDS_REPLAY_TOKEN); one token fits one URL "
                             "and one call, so prefer --issuer-dir")
    parser.add_argument("--issuer-dir", metavar="DIR",
                        help="with --url, sign a fresh token for every request (aud = that request's URL) with "
                             "the development issuer in DIR (see `cds-service dev-issuer`)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for each answer with --url (default 30)")
    parser.add_argument("--json", metavar="FILE", help="write a JSON report")
    parser.add_argument("--junit", metavar="FILE", help="write a JUnit XML report (for CI)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (it is off anyway when stderr is not a terminal)")
    parser.add_argument("--write-expected", action="store_true",
                        help="record the current answers as the expectation of fixtures that have none; "
                             "for a patient Bundle, write <name>.replay.json beside it")
    parser.add_argument("--overwrite", action="store_true",
                        help="with --write-expected, replace existing expectations too (review the diff!)")
    parser.add_argument("--strict", action="store_true", help="a fixture without expectation counts as a failure")
    parser.add_argument("--show-cards", action="store_true", help="print the cards and decisions of every fixture")
    parser.add_argument("--service", default=ORDER_SIGN, choices=sorted(set(SERVICE_BY_HOOK.values())),
                        help=f"service a patient Bundle is replayed against (default {ORDER_SIGN})")
    parser.add_argument("--all-orders", action="store_true",
                        help="send every draft/active order of a patient Bundle, not only radioelement/brachytherapy ones")
    parser.add_argument("--today", type=date.fromisoformat, metavar="YYYY-MM-DD",
                        help="the date ${today} tokens in fixtures stand for (default: today); must match the service's clock")
    parser.set_defaults(handler=run)


def _new_expectation(result: Result) -> dict[str, Any]:
    assert result.http_status is not None
    expect = expectation_from(result.http_status, result.body)
    old = result.fixture.expect or {}
    if "error_contains" in old and result.http_status == old.get("status"):
        expect["error_contains"] = old["error_contains"]
    if "card_count" in old:
        expect["card_count"] = len(result.cards)
    if "fhir_requests" in old:
        expect["fhir_requests"] = result.fhir_requests
    return expect


def make_transport(args: argparse.Namespace) -> Transport:
    if args.url:
        token_for = None
        if args.issuer_dir:
            issuer = load_dev_issuer(args.issuer_dir)
            token_for = issuer.token
        token = args.token or (None if token_for else Settings.from_env().replay_token)
        return HttpTransport(args.url, token=token, timeout=args.timeout, token_for=token_for)
    return InProcessTransport()


def print_request(args: argparse.Namespace) -> int:
    """The fixture's request as it would be sent, for curl (``--data @file``) and the Sandbox."""
    found = discover([args.print_request], today=args.today, service_for_bundles=args.service,
                     all_orders=args.all_orders)
    for name, problem in found.problems:
        print(f"cds-service replay: {name}: {problem}", file=sys.stderr)
    if len(found.fixtures) != 1:
        if not found.problems:
            print(f"cds-service replay: --print-request needs one fixture file, {args.print_request} holds "
                  f"{len(found.fixtures)}", file=sys.stderr)
        return 2
    fixture = found.fixtures[0]
    if fixture.raw_body is not None:
        sys.stdout.buffer.write(fixture.raw_body + b"\n")
        return 0
    request = dict(fixture.request or {})
    if isinstance(request.get("hookInstance"), str):
        request["hookInstance"] = str(uuid.uuid4())
    if fixture.fhir is not None:
        print(f"cds-service replay: note: {fixture.name} serves {len(fixture.fhir)} FHIR resource(s) from a "
              "stand-in FHIR server during replay; the printed request has no fhirServer, so the service "
              "answers from the prefetch alone", file=sys.stderr)
        request.pop("fhirServer", None)
    print(f"# POST to /cds-services/{fixture.service}", file=sys.stderr)
    print(json.dumps(request, indent=2))
    return 0


def run(args: argparse.Namespace) -> int:
    if args.print_request:
        return print_request(args)
    if not args.paths:
        print("cds-service replay: give at least one PATH (or --print-request FIXTURE)", file=sys.stderr)
        return 2
    if args.issuer_dir and not args.url:
        print("cds-service replay: --issuer-dir signs tokens for --url; in process there is no authentication",
              file=sys.stderr)
        return 2
    if args.overwrite and not args.write_expected:
        print("cds-service replay: --overwrite only makes sense with --write-expected", file=sys.stderr)
        return 2
    found = discover(args.paths, today=args.today, service_for_bundles=args.service, all_orders=args.all_orders)
    for name, problem in found.problems:
        print(f"ERROR {name}: {problem}")
    if not found.fixtures:
        print("cds-service replay: no fixtures found under " + ", ".join(args.paths), file=sys.stderr)
        return 2

    try:
        transport = make_transport(args)
    except DevIssuerError as error:
        print(f"cds-service replay: {error}", file=sys.stderr)
        return 2
    runner = Runner(transport)
    progress = Progress(len(found.fixtures), enabled=False if args.no_progress else None)
    results: list[Result] = []
    failed = 0
    started = time.perf_counter()
    try:
        for index, fixture in enumerate(found.fixtures, start=1):
            progress.update(index - 1, fixture.name, failed)
            result = runner.run(fixture)
            writable = result.outcome != "error" and result.http_status is not None
            if args.write_expected and writable and (fixture.expect is None or args.overwrite):
                if fixture.expect is None or result.outcome == "failed":
                    result.written_to = str(write_expectation(fixture, _new_expectation(result)))
                    result.outcome = "written"
                elif result.outcome == "passed":
                    pass  # an unchanged expectation is left as it is, byte for byte
            if args.strict and result.outcome == "unchecked":
                result.outcome = "failed"
                result.error = "no expectation in the fixture (--strict)"
            if result.outcome in ("failed", "error"):
                failed += 1
            results.append(result)
            lines = result_lines(result, show_cards=args.show_cards)
            if lines:
                progress.clear()
                print("\n".join(lines), flush=True)
        progress.update(len(found.fixtures), "done", failed)
        progress.clear()
    finally:
        runner.close()
    elapsed = time.perf_counter() - started

    target = "in process" if not args.url else args.url
    print()
    print(summary_table(results, target, elapsed))
    if found.problems:
        print(f"\n{len(found.problems)} file(s) could not be loaded (see ERROR lines above)")
    if args.json:
        write_json_report(args.json, json_report(results, target, elapsed))
    if args.junit:
        write_text(args.junit, junit_xml(results, target, elapsed))
    bad = sum(result.outcome in ("failed", "error") for result in results) + len(found.problems)
    return 1 if bad else 0
