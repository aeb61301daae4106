"""What every command group shares: the error it prints, settings, a database session."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from typing import Any

from node.config import Settings, load_settings
from node.db import make_engine, make_sessionmaker, session_scope

__all__ = ["CommandError", "settings_of", "with_data_dir", "with_session"]


class CommandError(Exception):
    """Printed as ``error: ...`` with exit status 1."""


async def with_session(settings: Settings, work: Callable[[Any], Awaitable[Any]]) -> Any:
    """Run ``work(session)`` in one transaction on the chamber's database."""
    engine = make_engine(settings.database_url)
    try:
        async with session_scope(make_sessionmaker(engine)) as session:
            return await work(session)
    finally:
        await engine.dispose()


def settings_of(args: argparse.Namespace) -> Settings:
    return load_settings(args.data_dir)


def with_data_dir(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--data-dir", required=True, help="the chamber's data directory")
    return parser
