"""What the launcher's command server holds before it forks a command (``demo.launcher``
imports this module there, once): each command then finds it done instead of doing it again.

The node's modules, its server's and database drivers' (imported on first use otherwise),
the translations built, the migrations' heads read, the models' mappers configured and the
federation's TLS context loaded: the same work every ``archipel serve`` (and most other
commands) would do at start. (Not the pages' templates: compiling all 48 costs more than the
few a test's chamber renders.) Importing this module anywhere else only does that work early.
"""

from __future__ import annotations

import aiosqlite  # noqa: F401 -- imported for the commands (see the module's note)
import jinja2.ext  # noqa: F401
import sqlalchemy.dialects.postgresql.asyncpg  # noqa: F401
import uvicorn  # noqa: F401
import uvicorn.lifespan.on  # noqa: F401
import uvicorn.loops.uvloop  # noqa: F401
import uvicorn.protocols.http.httptools_impl  # noqa: F401
import uvicorn.protocols.websockets.auto  # noqa: F401
from sqlalchemy.orm import configure_mappers

import node.cli  # noqa: F401
import node.models  # noqa: F401
import node.ops.logs  # noqa: F401
import node.web.app  # noqa: F401
from node import i18n
from node.activitypub.transport import make_async_client
from node.migrate import head_revisions

__all__: list[str] = []


def _prepare() -> None:
    for language in i18n.SUPPORTED_LANGUAGES:
        i18n.translations(language)
    head_revisions()
    configure_mappers()  # the models' mappers, configured at the first query otherwise
    # the federation's verifying TLS context, kept by the transport (the CA bundle)
    make_async_client(allow_private_addresses=False, user_agent="archipel")


_prepare()
