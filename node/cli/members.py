"""Members and the administrators' college.

``member add|approve|refuse|suspend|reinstate|list``, ``admin promote|demote|audit``.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from node.cli.common import settings_of, with_data_dir, with_session
from node.members.models import MemberStatus
from node.members.service import create_member, get_member
from node.secretbox import SecretBox

__all__ = [
    "add_member_commands",
    "cmd_audit",
    "cmd_member_action",
    "cmd_member_add",
    "cmd_member_list",
    "cmd_member_reset_password",
]


def cmd_member_add(args: argparse.Namespace) -> None:
    settings = settings_of(args)
    box = SecretBox(settings.secret_key)

    async def work(session: Any) -> str:
        member = await create_member(
            session,
            box,
            username=args.username,
            chamber_username=settings.chamber_username,
            password=args.password,
            display_name=args.display_name or "",
            status=MemberStatus.APPROVED,
        )
        return member.username

    username = asyncio.run(with_session(settings, work))
    print(f"member @{username}@{settings.host} added (approved)")


def cmd_member_reset_password(args: argparse.Namespace) -> None:
    """A single-use link (valid one hour) that lets the member choose a new password; the
    URL is the last word of the last line. Logged in the audit log."""
    from node.members.audit import AuditAction, record_audit
    from node.members.recovery import make_reset_link

    settings = settings_of(args)

    async def work(session: Any) -> str:
        member = await get_member(session, args.username)
        link = await make_reset_link(session, settings, member)
        await record_audit(session, None, AuditAction.RESET_LINK, member.username)
        return link

    link = asyncio.run(with_session(settings, work))
    print(f"give {args.username} this link (valid one hour, once) to choose a new password:")
    print(link)


def cmd_member_action(args: argparse.Namespace) -> None:
    """approve, refuse, suspend, reinstate (member), promote, demote (admin), grant, revoke,
    rule (clearing): the administrators' actions, run by the operator and audit-logged."""
    from node.members.governance import MEMBER_ACTIONS

    settings = settings_of(args)
    action = {"grant": "grant-clearing", "revoke": "revoke-clearing", "rule": "clearing-by-rule"}
    name = action.get(args.action, args.action)

    async def work(session: Any) -> str:
        member = await get_member(session, args.username)
        await MEMBER_ACTIONS[name](session, None, member, args.reason)
        access = member.clearing_override or "by the chamber's rule"
        return (
            f"{member.username}: {member.status}, {member.role}, clearing access {access}"
            " (logged in the audit log)"
        )

    print(asyncio.run(with_session(settings, work)))


def cmd_member_list(args: argparse.Namespace) -> None:
    from sqlalchemy import select

    from node.members.models import Member

    settings = settings_of(args)

    async def work(session: Any) -> list[str]:
        query = select(Member).order_by(Member.username)
        if args.status:
            query = query.where(Member.status == args.status)
        return [
            f"{m.username}\t{m.status}\t{m.role}\t{m.status_reason}"
            for m in (await session.execute(query)).scalars()
        ]

    for line in asyncio.run(with_session(settings, work)):
        print(line)


def cmd_audit(args: argparse.Namespace) -> None:
    from node.members.audit import list_audit

    settings = settings_of(args)

    async def work(session: Any) -> list[str]:
        entries, _total = await list_audit(session, limit=args.limit)
        return [
            f"{e.at:%Y-%m-%d %H:%M}\t{e.by}\t{e.action}\t{e.target}\t{e.reason}" for e in entries
        ]

    for line in asyncio.run(with_session(settings, work)):
        print(line)


def add_member_commands(commands: Any) -> None:
    member = commands.add_parser("member", help="manage members")
    member_commands = member.add_subparsers(dest="member_command", required=True)
    add = with_data_dir(member_commands.add_parser("add", help="add an approved member"))
    add.add_argument("username")
    add.add_argument("--password")
    add.add_argument("--display-name")
    add.set_defaults(func=cmd_member_add)
    for verb, needs_reason in (
        ("approve", False),
        ("refuse", True),
        ("suspend", True),
        ("reinstate", False),
    ):
        action = with_data_dir(member_commands.add_parser(verb, help=f"{verb} a member (logged)"))
        action.add_argument("username")
        action.add_argument("--reason", required=needs_reason, default="")
        action.set_defaults(func=cmd_member_action, action=verb)
    reset = with_data_dir(
        member_commands.add_parser("reset-password", help="print a password reset link")
    )
    reset.add_argument("username")
    reset.set_defaults(func=cmd_member_reset_password)
    listing = with_data_dir(member_commands.add_parser("list", help="list members"))
    listing.add_argument("--status", choices=list(MemberStatus.ALL))
    listing.set_defaults(func=cmd_member_list)
    admin = commands.add_parser("admin", help="the administrators' college")
    admin_commands = admin.add_subparsers(dest="admin_command", required=True)
    for verb in ("promote", "demote"):
        action = with_data_dir(admin_commands.add_parser(verb, help=f"{verb} an administrator"))
        action.add_argument("username")
        action.add_argument("--reason", default="")
        action.set_defaults(func=cmd_member_action, action=verb)
    audit = with_data_dir(admin_commands.add_parser("audit", help="print the audit log"))
    audit.add_argument("--limit", type=int, default=50)
    audit.set_defaults(func=cmd_audit)
