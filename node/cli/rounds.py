"""``archipel round``: propose a clearing round, list the rounds, show one.

Hooked into the ``archipel`` parser by `add_round_commands`::

    archipel round propose --data-dir DIR [--partner URI_OR_HANDLE ...] [--json]
    archipel round list --data-dir DIR [--state STATE] [--json]
    archipel round show --data-dir DIR ROUND_URI

Errors are printed as ``error: ...`` with exit status 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from sqlalchemy import select

from node.clearing.partners.models import Partner
from node.clearing.units import ClearingError, format_minutes
from node.config import load_settings
from node.db import read_only

__all__ = ["add_round_commands", "cmd_round"]


def add_round_commands(commands: Any) -> None:
    """Add ``round propose|list|show`` to the ``archipel`` subcommands (``commands`` is the
    object ``parser.add_subparsers()`` returned)."""
    parser = commands.add_parser("round", help="multilateral clearing rounds between chambers")
    actions = parser.add_subparsers(dest="round_command", required=True)
    propose = actions.add_parser("propose", help="propose a round among partner chambers")
    propose.add_argument(
        "--partner",
        action="append",
        default=None,
        metavar="URI_OR_HANDLE",
        help="a partner chamber to invite (repeat it); every partner when left out",
    )
    listing = actions.add_parser("list", help="the latest rounds, newest first")
    listing.add_argument("--state", default=None, help="only rounds in this state")
    show = actions.add_parser("show", help="one round, as JSON (statements, signatures...)")
    show.add_argument("uri", help="the round's URI")
    for action in (propose, listing, show):
        action.add_argument("--data-dir", required=True, help="the chamber's data directory")
    for action in (propose, listing):
        action.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(func=cmd_round)


def cmd_round(args: argparse.Namespace) -> None:
    try:
        for line in asyncio.run(_run(args)):
            print(line)
    except ClearingError as exc:
        raise SystemExit(f"error: {exc}") from None


async def _run(args: argparse.Namespace) -> list[str]:
    from node.runtime import open_runtime

    settings = load_settings(args.data_dir)
    async with open_runtime(settings) as runtime:
        service = runtime.services.rounds
        if args.round_command == "propose":
            partners = None
            if args.partner:
                async with read_only(runtime.sessionmaker) as session:
                    partners = [await _partner_uri(session, text) for text in args.partner]
            summary = await service.propose_round(partners)
            await runtime.worker.run_until_idle(max_batches=3)  # send the invitations now
            if args.json:
                return [json.dumps(summary.as_json())]
            return [
                summary.uri,
                f"collecting statements from {len(summary.participants) - 1} partner chambers"
                f" until {summary.deadline.isoformat()}",
            ]
        async with read_only(runtime.sessionmaker) as session:
            if args.round_command == "show":
                detail = await service.get_round(session, args.uri)
                return [json.dumps(detail.as_json(), indent=2, ensure_ascii=False)]
            rounds = await service.list_rounds(session, state=args.state)
        if args.json:
            return [json.dumps([r.as_json() for r in rounds])]
        return [
            f"{r.uri}\t{r.state}\t{r.role}\t{len(r.participants)} chambers"
            f"\t{format_minutes(r.total_before)} -> {format_minutes(r.total_after)}"
            + (f"\t{r.reason}" if r.reason else "")
            for r in rounds
        ] or ["no rounds yet"]


async def _partner_uri(session: Any, text: str) -> str:
    """A partner's actor URI from its URI or its handle (``@chamber@host``)."""
    wanted = text.strip()
    if wanted.startswith(("http://", "https://")):
        return wanted
    handle = "@" + wanted.removeprefix("acct:").lstrip("@")
    found = (
        await session.execute(select(Partner.chamber_uri).where(Partner.handle == handle))
    ).scalar_one_or_none()
    if found is None:
        raise ClearingError(f"no partner chamber {text!r}: give its actor URI or @name@host")
    return str(found)
