"""The ``archipel`` command: what an administrator runs on the server."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from node.cli.clearing import add_clearing_commands
from node.cli.common import CommandError
from node.cli.federation import add_federation_commands
from node.cli.members import add_member_commands
from node.cli.setup import add_operations_commands, add_setup_commands
from node.config import ConfigError
from node.members.errors import MemberError
from node.members.token_cli import add_token_commands

__all__ = ["CommandError", "build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The command groups, in the order ``archipel --help`` lists them."""
    parser = argparse.ArgumentParser(prog="archipel", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_setup_commands(commands)
    add_member_commands(commands)
    add_clearing_commands(commands)
    add_token_commands(commands)
    add_operations_commands(commands)
    add_federation_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (CommandError, ConfigError, MemberError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
