"""Setting a chamber up and running it: init, migrate, serve, worker, backup, restore, doctor."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from node.chamber import ensure_chamber_actor
from node.cli.common import CommandError, settings_of, with_data_dir, with_session
from node.config import (
    CONFIG_FILENAME,
    load_settings,
    new_settings,
    write_settings,
)
from node.db import is_sqlite
from node.members.models import MemberRole, MemberStatus
from node.members.service import create_member
from node.migrate import upgrade
from node.ops.private_files import restrict_sqlite_file, write_private_file
from node.secretbox import SecretBox

if TYPE_CHECKING:
    from starlette.applications import Starlette

__all__ = [
    "add_operations_commands",
    "add_setup_commands",
    "cmd_backup",
    "cmd_doctor",
    "cmd_init",
    "cmd_migrate",
    "cmd_restore",
    "cmd_serve",
    "cmd_worker",
    "server_process_app",
]


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

    asyncio.run(with_session(settings, work))
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
    settings = settings_of(args)
    upgrade(settings.database_url)
    print("database is up to date")


#: What ``serve --workers N`` hands each server process (uvicorn starts them from an import
#: string, so the app factory takes no arguments): the data directory, and whether to run a
#: job worker inside.
SERVE_DATA_DIR_ENV = "ARCHIPEL_SERVE_DATA_DIR"
SERVE_WORKER_ENV = "ARCHIPEL_SERVE_WORKER"
SERVE_PARENT_ENV = "ARCHIPEL_SERVE_PARENT"


def _end_with_supervisor() -> None:
    """On Linux, this server process is sent SIGTERM when the supervisor dies, even killed
    (the OOM killer, a ``kill -9``), rather than serving on alone with the port and the
    database connections."""
    parent = os.environ.get(SERVE_PARENT_ENV)
    if sys.platform != "linux" or not parent:
        return
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
    if os.getppid() != int(parent):  # it died before we asked
        os.kill(os.getpid(), signal.SIGTERM)


def server_process_app() -> Starlette:
    """The app of one of ``serve --workers N``'s processes (uvicorn's ``factory``)."""
    from node.web.app import create_app

    _end_with_supervisor()
    settings = load_settings(os.environ[SERVE_DATA_DIR_ENV])
    return create_app(settings, run_worker=os.environ.get(SERVE_WORKER_ENV) == "1")


def cmd_serve(args: argparse.Namespace) -> None:
    """One server process, or ``--workers N`` under uvicorn's supervisor (it restarts a
    process that dies; SIGHUP replaces them one by one). Each runs a job worker unless
    ``--no-worker``: see docs/scaling.md."""
    import uvicorn

    from node.ops.logs import configure_logging
    from node.web.app import create_app

    if args.workers < 1:
        raise CommandError("--workers: at least 1 server process")
    settings = settings_of(args)
    if args.proxy_headers and not settings.trusted_proxies.strip():
        raise CommandError("--proxy-headers needs trusted_proxies (the reverse proxy's address)")
    log_config = configure_logging(settings.log_format, args.log_level)
    upgrade(settings.database_url)
    options: dict[str, Any] = {
        "host": args.host,
        "port": args.port,
        "log_level": args.log_level,
        "log_config": log_config,
        "access_log": False,  # node.access (node.ops.web) logs each request, with its duration
        "proxy_headers": args.proxy_headers,
        "forwarded_allow_ips": settings.trusted_proxies if args.proxy_headers else None,
        "server_header": False,
        "loop": "uvloop",  # the fast event loop and HTTP parser (pyproject's uvloop, httptools)
        "http": "httptools",
    }
    if args.workers == 1:
        uvicorn.run(create_app(settings, run_worker=not args.no_worker), workers=1, **options)
        return
    if is_sqlite(settings.database_url):
        logging.getLogger(__name__).warning(
            "%d server processes on SQLite take turns to write: use PostgreSQL to scale out"
            " (docs/scaling.md)",
            args.workers,
        )
    os.environ[SERVE_DATA_DIR_ENV] = str(settings.data_dir)  # inherited by each process
    os.environ[SERVE_WORKER_ENV] = "0" if args.no_worker else "1"
    os.environ[SERVE_PARENT_ENV] = str(os.getpid())
    uvicorn.run(f"{__name__}:server_process_app", factory=True, workers=args.workers, **options)


def cmd_worker(args: argparse.Namespace) -> None:
    """A job worker: any number of them (and of servers running one) share the jobs."""
    from node.ops.logs import configure_logging
    from node.runtime import open_runtime

    settings = settings_of(args)
    configure_logging(settings.log_format, args.log_level)
    upgrade(settings.database_url)

    async def run() -> None:
        async with open_runtime(settings) as runtime:
            if args.until_idle:
                ran = await runtime.worker.run_until_idle()
                print(f"{ran} job(s) run")
            else:
                await runtime.run_worker()

    asyncio.run(run())


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


def add_setup_commands(commands: Any) -> None:
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
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="server processes sharing the port (PostgreSQL; see docs/scaling.md)",
    )
    serve.add_argument(
        "--no-worker",
        action="store_true",
        help="run no job worker in the server processes (run `archipel worker` beside them)",
    )
    serve.add_argument(
        "--proxy-headers",
        action="store_true",
        help="trust X-Forwarded-For/-Proto from trusted_proxies (behind a reverse proxy)",
    )
    serve.set_defaults(func=cmd_serve)


def add_operations_commands(commands: Any) -> None:
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
