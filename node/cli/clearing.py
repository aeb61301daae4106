"""The clearing house: clearing grant|revoke|rule|limits, partner ..., rounds, verify."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from node.cli.common import CommandError, settings_of, with_data_dir
from node.cli.members import cmd_member_action
from node.cli.reconciliation import add_reconciliation_commands
from node.cli.rounds import add_round_commands
from node.members.service import get_member

__all__ = ["add_clearing_commands", "cmd_clearing_limits", "cmd_partner", "cmd_verify"]


def cmd_clearing_limits(args: argparse.Namespace) -> None:
    from node.clearing.units import ClearingError, format_minutes, parse_duration
    from node.db import read_only
    from node.runtime import open_runtime

    settings = settings_of(args)

    def minutes(text: str | None, *, current: int | None) -> int | None:
        if text is None:
            return current
        if text.strip().lower() in ("default", "none"):
            return None
        return parse_duration(text)

    async def run() -> str:
        async with open_runtime(settings) as runtime:
            house = runtime.services.clearing
            async with read_only(runtime.sessionmaker) as session:
                member = await get_member(session, args.username)
                view = await house.account_of(session, member)
            current = view.account
            floor = minutes(args.floor, current=current.floor if current else None)
            ceiling = minutes(args.ceiling, current=current.ceiling if current else None)
            if args.ceiling and args.ceiling.strip().lower() == "none":
                ceiling = None
            view = await house.set_limits(
                member, floor=floor, ceiling=ceiling, by=None, reason=args.reason
            )
            ceiling_text = (
                "none" if view.limits.ceiling is None else format_minutes(view.limits.ceiling)
            )
            return (
                f"{member.username}: floor {format_minutes(view.limits.floor)},"
                f" ceiling {ceiling_text}"
            )

    try:
        print(asyncio.run(run()))
    except ClearingError as exc:
        raise CommandError(str(exc)) from None


def cmd_partner(args: argparse.Namespace) -> None:
    """``partner add|list|set``: the chambers this one trades with and their credit lines."""
    from node.clearing.partners.service import (
        PartnerError,
        add_partner,
        list_partners,
        set_credit_line,
    )
    from node.db import read_only
    from node.runtime import open_runtime

    settings = settings_of(args)

    async def run() -> list[str]:
        async with open_runtime(settings) as runtime:
            if args.partner_command == "add":
                views = [
                    await add_partner(
                        runtime.federation,
                        args.chamber,
                        args.credit_line_minutes,
                        by=None,
                        reason=args.reason,
                    )
                ]
                await runtime.services.reconciler.schedule()
            elif args.partner_command == "set":
                views = [
                    await set_credit_line(
                        runtime.federation,
                        args.chamber,
                        args.credit_line_minutes,
                        by=None,
                        reason=args.reason,
                    )
                ]
            else:
                async with read_only(runtime.sessionmaker) as session:
                    views = await list_partners(session)
        return [
            f"{v.chamber_uri}  {v.name}  credit line {v.as_json()['credit_line']}"
            f"  balance {v.as_json()['balance']}"
            + (
                "  confirmed both ways"
                if v.confirmed
                else "  not confirmed yet: it must add us too"
            )
            for v in views
        ]

    try:
        lines = asyncio.run(run())
    except PartnerError as exc:
        raise CommandError(str(exc)) from None
    print("\n".join(lines) if lines else "no partner chambers yet")


def cmd_verify(args: argparse.Namespace) -> None:
    """``verify URL``: an exchange's (or a round's) proofs, checked with public documents only."""
    from node.clearing.verify import VerifyError, verify

    try:
        report = asyncio.run(verify(args.url, allow_private_addresses=args.allow_private_addresses))
    except VerifyError as exc:
        raise CommandError(str(exc)) from None
    print("\n".join(report.lines()))
    if not report.ok:
        raise CommandError(f"{args.url}: the proofs do not establish what the document says")


def add_clearing_commands(commands: Any) -> None:
    clearing = commands.add_parser("clearing", help="access to the clearing house")
    clearing_commands = clearing.add_subparsers(dest="clearing_command", required=True)
    for verb, text in (
        ("grant", "open access by hand"),
        ("revoke", "withdraw access by hand"),
        ("rule", "back to the chamber's rule"),
    ):
        action = with_data_dir(clearing_commands.add_parser(verb, help=text))
        action.add_argument("username")
        action.add_argument("--reason", required=True)
        action.set_defaults(func=cmd_member_action, action=verb)
    limits = with_data_dir(
        clearing_commands.add_parser("limits", help="set a member's floor and ceiling")
    )
    limits.add_argument("username")
    limits.add_argument("--floor", help="e.g. '-10 h' (overdraft limit); 'default' to reset")
    limits.add_argument("--ceiling", help="e.g. '40 h'; 'none' for no ceiling; 'default'")
    limits.add_argument("--reason", required=True)
    limits.set_defaults(func=cmd_clearing_limits)
    partner = commands.add_parser("partner", help="partner chambers and credit lines")
    partner_commands = partner.add_subparsers(dest="partner_command", required=True)
    for verb, text in (
        ("add", "trade with a chamber (@chamber@host or its actor URL)"),
        ("set", "change the credit line extended to a partner (its actor id)"),
    ):
        command = with_data_dir(partner_commands.add_parser(verb, help=text))
        command.add_argument("chamber")
        command.add_argument(
            "--credit-line-minutes",
            type=int,
            required=True,
            help="how far that chamber may owe this one, in minutes (600 for 10 h)",
        )
        command.add_argument("--reason", default="", help="why (written to the audit log)")
        command.set_defaults(func=cmd_partner)
    with_data_dir(partner_commands.add_parser("list", help="list partners")).set_defaults(
        func=cmd_partner
    )
    add_reconciliation_commands(partner_commands)
    add_round_commands(commands)
    verify = commands.add_parser(
        "verify", help="check every proof of an exchange or a clearing round (any node)"
    )
    verify.add_argument(
        "url", help="the exchange's (or round's) URL, e.g. https://lille.example/exchanges/4f2a"
    )
    verify.add_argument(
        "--allow-private-addresses",
        action="store_true",
        help="also fetch from private/loopback addresses and plain http (local demos and tests)",
    )
    verify.set_defaults(func=cmd_verify)
