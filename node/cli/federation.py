"""The fediverse by hand: follow, announce, block."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from node.cli.common import CommandError, settings_of, with_data_dir, with_session
from node.db import session_scope
from node.members.errors import MemberError

__all__ = ["add_federation_commands", "cmd_announce", "cmd_block", "cmd_follow"]


def cmd_follow(args: argparse.Namespace) -> None:
    from node.activitypub.actors import get_local_actor
    from node.activitypub.federation import FederationError
    from node.activitypub.follows import follow, unfollow
    from node.runtime import open_runtime

    settings = settings_of(args)
    username = (args.as_user or settings.chamber_username).lower()

    async def run() -> str:
        async with open_runtime(settings) as runtime:
            try:
                target = await runtime.federation.resolve_handle(args.handle)
                await runtime.federation.get_remote_actor(target)
                async with session_scope(runtime.sessionmaker) as session:
                    actor = await get_local_actor(session, username)
                    if actor is None:
                        raise CommandError(f"no local actor named {username!r}")
                    if args.undo:
                        await unfollow(runtime.federation, session, actor, target)
                        return f"@{username} no longer follows {target}"
                    state = (await follow(runtime.federation, session, actor, target)).state
            except FederationError as exc:
                raise CommandError(str(exc)) from None
            await runtime.worker.run_until_idle(max_batches=3)
            return f"@{username} follows {target}: {state} (delivery queued)"

    print(asyncio.run(run()))


def cmd_announce(args: argparse.Namespace) -> None:
    from node.activitypub.actors import get_local_actor
    from node.activitypub.notes import publish_note
    from node.runtime import open_runtime

    settings = settings_of(args)
    username = (args.as_user or settings.chamber_username).lower()
    if not args.text.strip() or len(args.text) > 5000:
        raise CommandError("the text must have 1 to 5000 characters")

    async def run() -> str:
        async with open_runtime(settings) as runtime:
            async with session_scope(runtime.sessionmaker) as session:
                actor = await get_local_actor(session, username)
                if actor is None:
                    raise CommandError(f"no local actor named {username!r}")
                stored = await publish_note(runtime.federation, session, actor, args.text)
            return stored.activity_id

    print(asyncio.run(run()))


def cmd_block(args: argparse.Namespace) -> None:
    from sqlalchemy import select

    from node.activitypub.models import DomainBlock
    from node.members.governance import block_domain, unblock_domain

    settings = settings_of(args)

    async def work(session: Any) -> list[str]:
        # through the governance service: blocks are written to the audit log
        if args.block_command == "add":
            try:
                host = (await block_domain(session, None, args.host, args.reason)).host
            except MemberError as exc:
                raise CommandError(str(exc)) from None
            return [f"{host} is blocked: nothing in, nothing out"]
        if args.block_command == "remove":
            await unblock_domain(session, None, args.host, args.reason)
            return [f"{args.host.lower()} is no longer blocked"]
        rows = await session.execute(select(DomainBlock).order_by(DomainBlock.host))
        return [f"{b.host}\t{b.reason}" for b in rows.scalars()]

    for line in asyncio.run(with_session(settings, work)):
        print(line)


def add_federation_commands(commands: Any) -> None:
    follow = with_data_dir(commands.add_parser("follow", help="follow a remote actor"))
    follow.add_argument("handle", help="@user@host or an actor URL")
    follow.add_argument("--as", dest="as_user", help="a member (default: the chamber)")
    follow.add_argument("--undo", action="store_true", help="stop following")
    follow.set_defaults(func=cmd_follow)
    announce = with_data_dir(
        commands.add_parser("announce", help="publish a public note to followers")
    )
    announce.add_argument("text")
    announce.add_argument("--as", dest="as_user", help="a member (default: the chamber)")
    announce.set_defaults(func=cmd_announce)
    block = commands.add_parser("block", help="domain blocks (nothing in, nothing out)")
    block_commands = block.add_subparsers(dest="block_command", required=True)
    block_add = with_data_dir(block_commands.add_parser("add"))
    block_add.add_argument("host")
    block_add.add_argument("--reason", default="")
    block_remove = with_data_dir(block_commands.add_parser("remove"))
    block_remove.add_argument("host")
    block_remove.add_argument("--reason", default="")
    with_data_dir(block_commands.add_parser("list"))
    block.set_defaults(func=cmd_block)
