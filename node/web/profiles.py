"""From local actors to what their documents and pages show (chamber or member)."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from node.activitypub.actors import ActorProfile, actor_document, get_local_actor
from node.activitypub.federation import Federation
from node.activitypub.models import LocalActor
from node.activitypub.outbox import PUBLIC, publish
from node.config import Settings
from node.members.contributions import ContributionStats, MemberContributions
from node.members.models import Member, MemberStatus

__all__ = ["LocalIdentity", "federate_profile", "find_identity", "plain_text_to_html"]


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
    #: Bricks, ratings and clearing use (when asked for, see ``find_identity``).
    contributions: MemberContributions | None = None

    @property
    def is_chamber(self) -> bool:
        return self.member is None


def _stat(name: str, value: object) -> dict[str, object]:
    return {"type": "PropertyValue", "name": name, "value": str(value)}


def _profile_extra(settings: Settings, found: MemberContributions) -> dict[str, object]:
    """Contributions as terms of the Archipel context and Mastodon-style profile fields."""
    bricks, clearing = found.bricks, found.clearing
    extra: dict[str, object] = {"ratingCount": bricks.rating_count}
    attachment = [_stat("Published bricks", bricks.published)]
    if bricks.rating_average is not None:
        extra["ratingAverage"] = round(bricks.rating_average, 2)
        attachment.append(_stat("Rating", f"{bricks.rating_average:.1f}/5 ({bricks.rating_count})"))
    attachment.append(_stat("Clearing exchanges", clearing.exchanges))
    if settings.balances_public and clearing.balance is not None:
        attachment.append(_stat("Clearing balance", clearing.balance))
    extra["attachment"] = attachment
    return extra


async def find_identity(
    session: AsyncSession,
    settings: Settings,
    username: str,
    contributions: ContributionStats | None = None,
) -> LocalIdentity | None:
    """The chamber or an approved member by username; None for anyone not public.
    With ``contributions``, a member's bricks, ratings and clearing use come along."""
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
    found = await contributions.of(session, member) if contributions is not None else None
    profile = ActorProfile(
        name=member.display_name or member.username,
        summary_html=plain_text_to_html(member.bio),
        page_url=settings.absolute(f"/@{member.username}"),
        icon_url=member.avatar_url,
        extra=_profile_extra(settings, found) if found is not None else {},
    )
    return LocalIdentity(actor=actor, member=member, profile=profile, contributions=found)


async def federate_profile(
    federation: Federation,
    session: AsyncSession,
    settings: Settings,
    username: str,
    contributions: ContributionStats | None = None,
) -> None:
    """``Update`` of the actor (its whole new document) to its followers, in the caller's
    transaction: a new name, bio, avatar, header, key or pinned bricks reach them."""
    identity = await find_identity(session, settings, username, contributions)
    if identity is None:
        return
    document = actor_document(identity.actor, settings.url, identity.profile)
    document.pop("@context", None)
    urls = federation.urls(identity.actor.username)
    await publish(
        federation,
        session,
        identity.actor,
        {"type": "Update", "object": document, "to": [PUBLIC], "cc": [urls.followers]},
        to_followers=True,
    )
