"""From local actors to what their documents and pages show (chamber or member)."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from node.activitypub.actors import ActorProfile, get_local_actor
from node.activitypub.models import LocalActor
from node.config import Settings
from node.members.models import Member, MemberStatus

__all__ = ["LocalIdentity", "find_identity", "plain_text_to_html"]


def plain_text_to_html(text: str) -> str:
    paragraphs = [p.strip() for p in text.replace("\r\n", "\n").split("\n\n") if p.strip()]
    return "".join(
        "<p>" + "<br>".join(escape(line) for line in p.split("\n")) + "</p>" for p in paragraphs
    )


@dataclass(frozen=True)
class LocalIdentity:
    """A local actor that may be shown publicly, with the member behind it if any."""

    actor: LocalActor
    member: Member | None
    profile: ActorProfile

    @property
    def is_chamber(self) -> bool:
        return self.member is None


async def find_identity(
    session: AsyncSession, settings: Settings, username: str
) -> LocalIdentity | None:
    """The chamber or an approved member by username; None for anyone not public."""
    username = username.lower()
    actor = await get_local_actor(session, username)
    if actor is None:
        return None
    if username == settings.chamber_username:
        profile = ActorProfile(
            name=settings.name,
            summary_html=plain_text_to_html(settings.description),
            page_url=settings.absolute("/"),
        )
        return LocalIdentity(actor=actor, member=None, profile=profile)
    member = (
        await session.execute(select(Member).where(Member.actor_id == actor.id))
    ).scalar_one_or_none()
    if member is None or member.status != MemberStatus.APPROVED:
        return None
    profile = ActorProfile(
        name=member.display_name or member.username,
        summary_html=plain_text_to_html(member.bio),
        page_url=settings.absolute(f"/@{member.username}"),
    )
    return LocalIdentity(actor=actor, member=member, profile=profile)
