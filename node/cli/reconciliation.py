"""``archipel partner reconcile`` and ``archipel partner status``: reconciliation by hand.

``add_reconciliation_commands`` adds both to the ``partner`` command's sub-parsers (in
`node.cli`). ``reconcile`` sends this chamber's statements now (delivery is queued: the
worker, or the server's own, sends them); ``status`` prints each partner's last
reconciliation and its differences.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from node.clearing.reconciliation.service import PartnerReconciliation, Reconciler
from node.clearing.reconciliation.statements import format_time, signed_minutes
from node.clearing.units import ClearingError
from node.config import Settings, load_settings
from node.db import read_only

__all__ = [
    "add_reconciliation_commands",
    "cmd_partner_reconcile",
    "cmd_partner_status",
    "reconcile_lines",
    "status_lines",
]

Parsers = Any  # argparse's _SubParsersAction[ArgumentParser] (private)


def add_reconciliation_commands(partner_commands: Parsers) -> None:
    """Add ``reconcile`` and ``status`` to ``archipel partner``'s sub-parsers."""
    reconcile = partner_commands.add_parser(
        "reconcile", help="send this chamber's signed statements to partners now"
    )
    reconcile.add_argument("--data-dir", required=True, help="the chamber's data directory")
    reconcile.add_argument("uri", nargs="?", help="one partner chamber's actor URL (default: all)")
    reconcile.set_defaults(func=cmd_partner_reconcile)
    status = partner_commands.add_parser(
        "status", help="each partner's last reconciliation and its differences"
    )
    status.add_argument("--data-dir", required=True, help="the chamber's data directory")
    status.add_argument("uri", nargs="?", help="one partner chamber's actor URL (default: all)")
    status.set_defaults(func=cmd_partner_status)


async def reconcile_lines(settings: Settings, uri: str | None = None) -> list[str]:
    """Send the statements; one line per partner."""

    async def work(reconciler: Reconciler) -> list[str]:
        sent = await reconciler.send_statements(uri)
        if not sent:
            return ["no partner chamber yet (see `archipel partner add`)"]
        return [
            f"{s.partner}: statement as of {format_time(s.as_of)} queued, balance "
            f"{signed_minutes(s.balance)}, {_plural(s.entries, 'reference')}"
            f"{f', {s.pending} in flight' if s.pending else ''}"
            for s in sent
        ]

    return await _with_reconciler(settings, work)


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'s' if count != 1 else ''}"


async def status_lines(settings: Settings, uri: str | None = None) -> list[str]:
    """The last reconciliation with each partner, differences included."""

    async def work(reconciler: Reconciler) -> list[str]:
        async with read_only(reconciler.sessionmaker) as session:
            views = await reconciler.status(session, uri)
        if not views:
            return ["no partner chamber yet (see `archipel partner add`)"]
        return [line for view in views for line in _describe(view)]

    return await _with_reconciler(settings, work)


def _describe(view: PartnerReconciliation) -> list[str]:
    def when(value: Any) -> str:
        return format_time(value) if value is not None else "never"

    lines = [
        f"{view.chamber_uri} ({view.name}): {view.status}, balance {signed_minutes(view.balance)}",
        f"  sent {when(view.sent_at)}, received {when(view.received_at)}"
        + (f", compared as of {when(view.received_as_of)}" if view.compared_at else ""),
    ]
    if view.summary:
        lines.append(f"  {view.summary.split('. ')[0]}")
    for item in view.mismatches:
        lines.append(f"  mismatch  {item.get('reference') or '-'}: {item['explanation']}")
    for item in view.pending:
        lines.append(f"  pending   {item.get('reference') or '-'}: {item['explanation']}")
    return lines


async def _with_reconciler(
    settings: Settings, work: Callable[[Reconciler], Awaitable[list[str]]]
) -> list[str]:
    from node.runtime import open_runtime

    async with open_runtime(settings) as runtime:
        return await work(runtime.services.reconciler)


def _run(
    args: argparse.Namespace,
    lines: Callable[[Settings, str | None], Coroutine[Any, Any, list[str]]],
) -> None:
    settings = load_settings(args.data_dir)
    try:
        output = asyncio.run(lines(settings, args.uri))
    except ClearingError as exc:
        from node.cli.common import CommandError

        raise CommandError(str(exc)) from None
    print("\n".join(output))


def cmd_partner_reconcile(args: argparse.Namespace) -> None:
    """``archipel partner reconcile --data-dir DIR [URI]``."""
    _run(args, reconcile_lines)


def cmd_partner_status(args: argparse.Namespace) -> None:
    """``archipel partner status --data-dir DIR [URI]``."""
    _run(args, status_lines)
