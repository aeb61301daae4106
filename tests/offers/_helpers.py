"""Members with clearing access for the offers' tests."""

from __future__ import annotations

from sqlalchemy import select
from starlette.applications import Starlette

from node.db import session_scope
from node.members.models import ClearingOverride, Member

OFFER = {
    "kind": "offer",
    "title": "Traduction NL-FR",
    "description": "Je traduis vos courriers du néerlandais vers le français.",
    "tags": ["traduction", "Néerlandais"],
    "minutes": 90,
}
NEED = {
    "kind": "need",
    "title": "Aide pour un dossier de subvention",
    "description": "Relire et compléter un dossier pour la commune.",
    "tags": "subvention, écriture",
}


async def grant_clearing(app: Starlette, username: str) -> None:
    async with session_scope(app.state.node.sessionmaker) as session:
        member = (
            await session.execute(select(Member).where(Member.username == username))
        ).scalar_one()
        member.clearing_override = ClearingOverride.GRANTED
        member.clearing_override_reason = "test"
