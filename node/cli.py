"""The ``archipel`` command: what an administrator runs on the server."""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from node.chamber import ensure_chamber_actor
from node.config import (
    CONFIG_FILENAME,
    ConfigError,
    Settings,
    load_settings,
    new_settings,
    write_settings,
)
from node.db import make_engine, make_sessionmaker, session_scope
from node.members.errors import MemberError
from node.members.models import MemberRole, MemberStatus
from node.members.service import create_member, get_member
from node.members.token_cli import add_token_commands
from node.migrate import upgrade
from node.ops.private_files import restrict_sqlite_file, write_private_file
from node.secretbox import SecretBox

__all__ = ["main"]


class CommandError(Exception):
    """Printed as ``error: ...`` with exit status 1."""


async def _with_session(settings: Settings, work: Callable[[Any], Awaitable[Any]]) -> Any:
    engine = make_engine(settings.database_url)
    try:
        async with session_scope(make_sessionmaker(engine)) as session:
            return await work(session)
    finally:
        await engine.dispose()


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(args.data_dir)


def cmd_init(args: argparse.Namespace) -> None:
    data_dir = Path(args.data_dir)
    if (data_dir / CONFIG_FILENAME).exists():
        raise CommandError(f"{data_dir / CONFIG_FILENAME} exists: this chamber is already set up")
    if args.admin_password and not args.admin:
        raise CommandError("--admin-password needs --admin USERNAME")
    password_file = Path(args.admin_password_file) if args.admin_password_file else None
    if password_file is not None:
        if not args.admin or args.admin_password:
            raise CommandError("--admin-password-file needs --admin and no --admin-password")
        if password_file.exists():
            raise CommandError(f"{password_file} exists: remove it or choose another file")
    settings = new_settings(
        data_dir,
        url=args.url,
        name=args.name,
        description=args.description,
        chamber_username=args.chamber_username,
        language=args.language,
        database_url=args.database_url or "",
        allow_private_addresses=args.allow_private_addresses,
    )
    try:  # 0700: the database, the configuration and the node secret live in it
        settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise CommandError(
            f"cannot create the data directory {settings.data_dir} ({exc.strerror}): create it"
            " for the user that runs archipel, e.g."
            f" sudo install -d -o archipel -g archipel -m 0700 {settings.data_dir}"
        ) from None
    upgrade(settings.database_url)
    restrict_sqlite_file(settings.database_url)
    box = SecretBox(settings.secret_key)
    admin_password = args.admin_password or (secrets.token_urlsafe(12) if args.admin else None)

    async def work(session: Any) -> None:
        await ensure_chamber_actor(session, settings, box)
        if args.admin:
            await create_member(
                session,
                box,
                username=args.admin,
                chamber_username=settings.chamber_username,
                password=admin_password,
                display_name=args.admin,
                status=MemberStatus.APPROVED,
                role=MemberRole.ADMIN,
            )

    asyncio.run(_with_session(settings, work))
    path = write_settings(settings)
    print(f"Chamber {settings.name!r} initialised in {settings.data_dir}")
    print(f"  configuration: {path}")
    print(f"  public URL:    {settings.url}")
    print(f"  chamber actor: @{settings.chamber_username}@{settings.host}")
    if args.admin:
        print(f"  administrator: {args.admin}")
        if password_file is not None:
            write_private_file(password_file, f"login: {args.admin}\npassword: {admin_password}\n")
            print(f"  its password is in {password_file} (mode 0600): log in, then delete it")
        elif not args.admin_password:
            print(f"  password:      {admin_password}   (shown once: write it down)")


def cmd_migrate(args: argparse.Namespace) -> None:
    settings = _settings(args)
    upgrade(settings.database_url)
    print("database is up to date")


def cmd_serve(args: argparse.Namespace) -> None:
    import uvicorn

    from node.ops.logs import configure_logging
    from node.web.app import create_app

    settings = _settings(args)
    if args.proxy_headers and not settings.trusted_proxies.strip():
        raise CommandError("--proxy-headers needs trusted_proxies (the reverse proxy's address)")
    log_config = configure_logging(settings.log_format, args.log_level)
    upgrade(settings.database_url)
    uvicorn.run(
        create_app(settings),
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        log_config=log_config,
        access_log=False,  # node.access (node.ops.web) logs each request, with its duration
        proxy_headers=args.proxy_headers,
        forwarded_allow_ips=settings.trusted_proxies if args.proxy_headers else None,
        server_header=False,
    )


def cmd_member_add(args: argparse.Namespace) -> None:
    settings = _settings(args)
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

    username = asyncio.run(_with_session(settings, work))
    print(f"member @{username}@{settings.host} added (approved)")


def cmd_member_reset_password(args: argparse.Namespace) -> None:
    """A single-use link (valid one hour) that lets the member choose a new password; the
    URL is the last word of the last line. Logged in the audit log."""
    from node.members.audit import AuditAction, record_audit
    from node.members.recovery import make_reset_link

    settings = _settings(args)

    async def work(session: Any) -> str:
        member = await get_member(session, args.username)
        link = await make_reset_link(session, settings, member)
        await record_audit(session, None, AuditAction.RESET_LINK, member.username)
        return link

    link = asyncio.run(_with_session(settings, work))
    print(f"give {args.username} this link (valid one hour, once) to choose a new password:")
    print(link)


def cmd_member_action(args: argparse.Namespace) -> None:
    """approve, refuse, suspend, reinstate (member), promote, demote (admin), grant, revoke,
    rule (clearing): the administrators' actions, run by the operator and audit-logged."""
    from node.members.governance import MEMBER_ACTIONS

    settings = _settings(args)
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

    print(asyncio.run(_with_session(settings, work)))


def cmd_member_list(args: argparse.Namespace) -> None:
    from sqlalchemy import select

    from node.members.models import Member

    settings = _settings(args)

    async def work(session: Any) -> list[str]:
        query = select(Member).order_by(Member.username)
        if args.status:
            query = query.where(Member.status == args.status)
        return [
            f"{m.username}\t{m.status}\t{m.role}\t{m.status_reason}"
            for m in (await session.execute(query)).scalars()
        ]

    for line in asyncio.run(_with_session(settings, work)):
        print(line)


def cmd_audit(args: argparse.Namespace) -> None:
    from node.members.audit import list_audit

    settings = _settings(args)

    async def work(session: Any) -> list[str]:
        entries, _total = await list_audit(session, limit=args.limit)
        return [
            f"{e.at:%Y-%m-%d %H:%M}\t{e.by}\t{e.action}\t{e.target}\t{e.reason}" for e in entries
        ]

    for line in asyncio.run(_with_session(settings, work)):
        print(line)


def cmd_worker(args: argparse.Namespace) -> None:
    from node.ops.logs import configure_logging
    from node.runtime import open_runtime

    settings = _settings(args)
    configure_logging(settings.log_format, args.log_level)
    upgrade(settings.database_url)

    async def run() -> None:
        async with open_runtime(settings) as runtime:
            if args.until_idle:
                ran = await runtime.worker.run_until_idle()
                print(f"{ran} job(s) run")
            else:
                await runtime.worker.run_forever()

    asyncio.run(run())


def cmd_follow(args: argparse.Namespace) -> None:
    from node.activitypub.actors import get_local_actor
    from node.activitypub.federation import FederationError
    from node.activitypub.follows import follow, unfollow
    from node.runtime import open_runtime

    settings = _settings(args)
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

    settings = _settings(args)
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

    settings = _settings(args)

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

    for line in asyncio.run(_with_session(settings, work)):
        print(line)


def cmd_backup(args: argparse.Namespace) -> None:
    from node.ops.backup import BackupError, create_backup, prune_backups

    if args.keep is not None and args.keep < 1:
        raise CommandError("--keep: at least 1 (the backup just written)")
    if args.keep is not None and not Path(args.out).is_dir():
        raise CommandError(f"--keep needs a directory to write into and prune: {args.out}")
    try:
        summary = create_backup(args.data_dir, args.out)
        removed = [] if args.keep is None else prune_backups(args.out, args.keep)
    except BackupError as exc:
        raise CommandError(str(exc)) from None
    print(
        f"backup written to {summary.path}: {sum(summary.rows.values())} rows in"
        f" {len(summary.rows)} tables, {summary.files} file(s); it holds the node secret:"
        " keep it as safe as the data directory"
    )
    if args.keep is not None:
        print(f"kept the {args.keep} newest backup(s) in {args.out}, removed {len(removed)}")


def cmd_restore(args: argparse.Namespace) -> None:
    from node.ops.backup import BackupError, restore_backup

    try:
        summary = restore_backup(args.archive, args.data_dir, database_url=args.database_url)
    except BackupError as exc:
        raise CommandError(str(exc)) from None
    print(
        f"restored into {summary.data_dir}: {sum(summary.rows.values())} rows (counts match"
        f" the backup), {summary.files} file(s); check it with `archipel doctor`"
    )


def cmd_doctor(args: argparse.Namespace) -> None:
    from node.ops.doctor import doctor

    if doctor(args.data_dir) != 0:
        raise CommandError("some checks failed: fix them (see above) and run doctor again")


def cmd_clearing_limits(args: argparse.Namespace) -> None:
    from node.clearing.service import ClearingHouse
    from node.clearing.units import ClearingError, format_minutes, parse_duration
    from node.db import read_only
    from node.runtime import open_runtime

    settings = _settings(args)

    def minutes(text: str | None, *, current: int | None) -> int | None:
        if text is None:
            return current
        if text.strip().lower() in ("default", "none"):
            return None
        return parse_duration(text)

    async def run() -> str:
        async with open_runtime(settings) as runtime:
            house = ClearingHouse(runtime.federation, settings)
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
    from node.clearing.partners import PartnerError, add_partner, list_partners, set_credit_line
    from node.clearing.reconciliation_service import schedule_reconciliation
    from node.db import read_only
    from node.runtime import open_runtime

    settings = _settings(args)

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
                await schedule_reconciliation(runtime.federation, settings)
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


def build_parser() -> argparse.ArgumentParser:
    from node.clearing.reconciliation_cli import add_reconciliation_commands
    from node.clearing.round_cli import add_round_commands

    parser = argparse.ArgumentParser(prog="archipel", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_data_dir(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--data-dir", required=True, help="the chamber's data directory")
        return p

    init = with_data_dir(commands.add_parser("init", help="set up a new chamber"))
    init.add_argument("--url", required=True, help="public base URL, e.g. https://lille.example")
    init.add_argument("--name", required=True, help="the chamber's name")
    init.add_argument("--description", default="")
    init.add_argument("--chamber-username", default="chamber", help="the chamber actor's handle")
    init.add_argument("--language", default="fr", choices=["fr", "en", "nl"])
    init.add_argument("--database-url", help="default: a SQLite file in the data directory")
    init.add_argument(
        "--allow-private-addresses",
        action="store_true",
        help="allow federation with private/loopback addresses (local demos and tests only)",
    )
    init.add_argument("--admin", help="username of the first administrator")
    init.add_argument("--admin-password", help="default: a random password, printed once")
    init.add_argument(
        "--admin-password-file",
        metavar="PATH",
        help="write the generated password to this new file (mode 0600) instead of printing it",
    )
    init.set_defaults(func=cmd_init)

    migrate = with_data_dir(commands.add_parser("migrate", help="apply database migrations"))
    migrate.set_defaults(func=cmd_migrate)

    serve = with_data_dir(commands.add_parser("serve", help="run the web server"))
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--log-level", default="info")
    serve.add_argument(
        "--proxy-headers",
        action="store_true",
        help="trust X-Forwarded-For/-Proto from trusted_proxies (behind a reverse proxy)",
    )
    serve.set_defaults(func=cmd_serve)

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

    add_token_commands(commands)
    worker = with_data_dir(commands.add_parser("worker", help="run background jobs (delivery)"))
    worker.add_argument("--until-idle", action="store_true", help="stop when no job is due")
    worker.add_argument("--log-level", default="info")

    backup = with_data_dir(commands.add_parser("backup", help="write a backup archive"))
    backup.add_argument("out", help="the .tar.gz to write (or a directory for a dated name)")
    backup.add_argument(
        "--keep",
        type=int,
        metavar="N",
        help="OUT is a directory: then delete all but the N newest dated backups in it",
    )
    backup.set_defaults(func=cmd_backup)
    restore = with_data_dir(
        commands.add_parser("restore", help="restore a backup into a new data directory")
    )
    restore.add_argument("archive")
    restore.add_argument("--database-url", help="default: SQLite in the new data directory")
    restore.set_defaults(func=cmd_restore)
    doctor = with_data_dir(commands.add_parser("doctor", help="check the chamber's setup"))
    doctor.set_defaults(func=cmd_doctor)
    worker.set_defaults(func=cmd_worker)

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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (CommandError, ConfigError, MemberError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
