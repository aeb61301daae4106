"""``archipel token``: create, list and revoke a member's API tokens.

Hooked into the ``archipel`` parser by `add_token_commands`::

    archipel token create --data-dir DIR USERNAME [--name NAME] [--expires-in DAYS]
    archipel token list --data-dir DIR USERNAME
    archipel token revoke --data-dir DIR USERNAME (--all | NAME)

``create`` prints the token alone (shown once, the last word of the output, for scripts);
``list`` never shows a secret. Errors are ``MemberError``s (``error: ...``, exit status 1).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import datetime, timedelta
from typing import Any

from node.config import load_settings
from node.db import make_engine, make_sessionmaker, session_scope, utcnow
from node.members.errors import InvalidMemberInput
from node.members.models import MemberStatus
from node.members.service import (
    create_token,
    get_member,
    list_tokens,
    revoke_token,
    revoke_tokens,
)

__all__ = ["add_token_commands", "token_lines"]


def _days(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError("a whole number of days, at least 1")
    return int(text)


def add_token_commands(commands: Any) -> None:
    """Add ``token create|list|revoke`` to the ``archipel`` subcommands (``commands`` is the
    object ``parser.add_subparsers()`` returned)."""
    parser = commands.add_parser("token", help="API tokens")
    actions = parser.add_subparsers(dest="token_command", required=True)
    create = actions.add_parser("create", help="print a new bearer token (shown once)")
    listing = actions.add_parser(
        "list", help="a member's tokens: name, created, last used, expires, state"
    )
    revoke = actions.add_parser("revoke", help="revoke one token (NAME) or --all")
    for action in (create, listing, revoke):
        action.add_argument("--data-dir", required=True, help="the chamber's data directory")
        action.add_argument("username")
    create.add_argument(
        "--name",
        "--label",
        dest="name",
        default="",
        help="unique among the member's tokens (default: token, token-2, ...)",
    )
    create.add_argument(
        "--expires-in", type=_days, metavar="DAYS", help="expire after DAYS days (default: never)"
    )
    which = revoke.add_mutually_exclusive_group(required=True)
    which.add_argument("name", nargs="?", help="the token's name (see token list)")
    which.add_argument("--all", action="store_true", help="every token of the member")
    parser.set_defaults(func=cmd_token)


def cmd_token(args: argparse.Namespace) -> None:
    lines = asyncio.run(_run(args))
    for line in lines:
        print(line)
    if not lines:
        print(f"{args.username} has no token", file=sys.stderr)


def _when(moment: datetime | None, default: str = "-") -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if moment is not None else default


async def token_lines(session: Any, username: str, *, now: datetime | None = None) -> list[str]:
    """``archipel token list``: one tab-separated line per token, oldest first."""
    member = await get_member(session, username)
    now = now or utcnow()
    return [
        f"{token.name}\tcreated {_when(token.created_at)}\tlast used {_when(token.last_used_at)}"
        f"\texpires {_when(token.expires_at, 'never')}\t{token.state(now)}"
        for token in await list_tokens(session, member)
    ]


async def _run(args: argparse.Namespace) -> list[str]:
    settings = load_settings(args.data_dir)
    engine = make_engine(settings.database_url)
    try:
        async with session_scope(make_sessionmaker(engine)) as session:
            if args.token_command == "list":
                return await token_lines(session, args.username)
            member = await get_member(session, args.username)
            if args.token_command == "create":
                if member.status != MemberStatus.APPROVED:
                    raise InvalidMemberInput(
                        "username", f"{member.username} is {member.status}, not approved"
                    )
                expires_at = None
                if args.expires_in is not None:
                    expires_at = utcnow() + timedelta(days=args.expires_in)
                return [await create_token(session, member, args.name, expires_at=expires_at)]
            if args.all:
                count = await revoke_tokens(session, member)
                return [f"{count} token(s) of {member.username} revoked"]
            token = await revoke_token(session, member, args.name)
            return [f"token {token.name!r} of {member.username} revoked"]
    finally:
        await engine.dispose()
