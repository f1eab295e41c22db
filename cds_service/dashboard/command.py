"""``cds-service dashboard-user NAME``: print a ``CDS_DASHBOARD_USERS`` line with an argon2 hash
of a password read from standard input (never from the command line, where ``ps`` shows it)."""

from __future__ import annotations

import argparse
import getpass
import sys

from argon2 import PasswordHasher

from cds_service.dashboard.access import _USER_NAME

MIN_PASSWORD = 12


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "dashboard-user", help="hash a dashboard password: prints a line for the CDS_DASHBOARD_USERS file",
        description="Reads the password from standard input (asked twice on a terminal) and prints NAME:argon2-hash.",
    )
    parser.add_argument("name", help="the user name (no ':' and no spaces)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if not _USER_NAME.match(args.name) or any(c.isspace() for c in args.name):
        print("cds-service dashboard-user: a user name has no ':' and no spaces, 1 to 128 characters", file=sys.stderr)
        return 2
    if sys.stdin.isatty():
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            print("cds-service dashboard-user: the two passwords differ", file=sys.stderr)
            return 2
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if len(password) < MIN_PASSWORD:
        print(f"cds-service dashboard-user: use at least {MIN_PASSWORD} characters", file=sys.stderr)
        return 2
    print(f"{args.name}:{PasswordHasher().hash(password)}")
    return 0
