"""The ``cds-service`` command: one sub-command per module, each adding its own parser."""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from cds_service import __version__, serve
from cds_service.ops import report
from cds_service.replay import command as replay
from cds_service.config import ConfigError, config_error_line
from cds_service.knowledge import KnowledgeError
from cds_service.knowledge import command as knowledge
from cds_service.security import dev_issuer

COMMAND_MODULES = [serve, report, replay, knowledge, dev_issuer]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cds-service", description="CDS Hooks service for radioelement therapy coding")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module in COMMAND_MODULES:
        module.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except ConfigError as error:
        print(config_error_line(error), file=sys.stderr)
        return 2
    except KnowledgeError as error:  # CDS_KNOWLEDGE_DIR names a folder that does not load
        print(f"cds-service: knowledge error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
