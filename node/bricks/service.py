"""The commons bank's operations: create, edit, delete, review; what a member contributed.

Callers open the transaction; nothing here touches the network. Remote actors a brick
needs (remote co-authors, the authors of a remote brick one reviews) are fetched before
the transaction with ``prefetch_actors`` and read here from the cache.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from node import i18n
from node.activitypub.actors import get_local_actor
from node.activitypub.featured import pin, unpin
from node.activitypub.federation import Federation, FederationError, authority_of
from node.activitypub.models import LocalActor, RemoteActor
from node.activitypub.outbox import follower_inboxes, last_sent, new_activity_id, publish
from node.bricks.as2 import PUBLIC, BrickDocument, article, review_note
from node.bricks.models import Brick, BrickAuthor, BrickReview, BrickTag, BrickVersion
from node.bricks.notices import notify_review
from node.bricks.text import html_to_text, render_markdown
from node.bricks.validation import LICENCE_URL, BrickInput, BrickInvalid
from node.members.contributions import BrickLink, BricksPublished, BrickStats
from node.members.models import Member, MemberStatus

__all__ = [
    "AuthorRef",
    "BrickForbidden",
    "BrickNotFound",
    "add_review",
    "author_refs",
    "brick_stats",
    "contribution_stats",
    "create_brick",
    "delete_brick",
    "document_of",
    "get_brick",
    "is_author",
    "pin_brick",
    "prefetch_actors",
    "remote_author_ref",
    "set_authors",
    "set_tags",
    "tag_url",
    "update_brick",
]

EDITABLE = ("title", "category", "summary", "body", "tags", "links", "files", "authors")
MAX_COMMENT_CHARS = 5000


class BrickNotFound(LookupError):
    pass


class BrickForbidden(PermissionError):
    pass


@dataclass(frozen=True)
class AuthorRef:
    actor_uri: str
    name: str
    profile_url: str
    member_id: int | None = None


def tag_url(base_url: str, tag: str) -> str:
    return f"{base_url}/tags/{quote(tag)}"


async def get_brick(session: AsyncSession, key: str) -> Brick:
    brick = (await session.execute(select(Brick).where(Brick.key == key))).scalar_one_or_none()
    if brick is None:
        raise BrickNotFound(f"no brick {key!r} here")
    return brick


def member_ref(federation: Federation, member: Member) -> AuthorRef:
    return AuthorRef(
        actor_uri=federation.urls(member.username).id,
        name=member.display_name or member.username,
        profile_url=f"{federation.base_url}/@{member.username}",
        member_id=member.id,
    )


def remote_author_ref(actor: RemoteActor | None, uri: str) -> AuthorRef:
    """A remote author as its cached document names it (or from its URI when unknown)."""
    document: dict[str, Any] = actor.document if actor is not None else {}
    handle = uri.rstrip("/").rsplit("/", 1)[-1]
    name = document.get("name") or document.get("preferredUsername") or handle
    url = document.get("url") if isinstance(document.get("url"), str) else uri
    label = f"{name} ({authority_of(uri)})" if name else uri
    return AuthorRef(actor_uri=uri, name=str(label)[:200], profile_url=str(url)[:2048])


async def prefetch_actors(federation: Federation, uris: Iterable[str]) -> list[str]:
    """Fetch remote actors before a transaction; returns the URIs that failed."""
    failed = []
    for uri in uris:
        if federation.is_local(uri):
            continue
        try:
            await federation.get_remote_actor(uri)
        except FederationError:
            failed.append(uri)
    return failed


async def author_refs(
    federation: Federation, session: AsyncSession, member: Member, names: list[str]
) -> list[AuthorRef]:
    """The acting member first, then co-authors: local usernames or (prefetched) remote
    actor URIs. ``BrickInvalid`` on ``authors`` names the first one that does not exist."""
    refs = [member_ref(federation, member)]
    for name in names:
        candidate = name.strip().lstrip("@")
        if candidate.startswith(("http://", "https://")) and not federation.is_local(candidate):
            cached = (
                await session.execute(select(RemoteActor).where(RemoteActor.uri == candidate))
            ).scalar_one_or_none()
            if cached is None:
                raise BrickInvalid(
                    {
                        "authors": i18n.gettext("'%(name)s' is not a known fediverse actor")
                        % {"name": name}
                    }
                )
            ref = remote_author_ref(cached, candidate)
        else:
            username = candidate.rstrip("/").rsplit("/", 1)[-1].lower()
            found = (
                await session.execute(
                    select(Member).where(
                        Member.username == username, Member.status == MemberStatus.APPROVED
                    )
                )
            ).scalar_one_or_none()
            if found is None:
                raise BrickInvalid(
                    {
                        "authors": i18n.gettext("'%(name)s' is not a member of this chamber")
                        % {"name": name}
                    }
                )
            ref = member_ref(federation, found)
        if ref.actor_uri not in {r.actor_uri for r in refs}:
            refs.append(ref)
    return refs


def document_of(brick: Brick) -> BrickDocument:
    return BrickDocument(
        uri=brick.uri,
        url=brick.url,
        title=brick.title,
        category=brick.category,
        summary=brick.summary,
        body_html=brick.body_html,
        body_markdown=brick.body_markdown,
        authors=[a.actor_uri for a in brick.authors],
        published=brick.published_at,
        updated=brick.updated_at,
        tags=brick.tag_names,
        links=list(brick.links),
        files=list(brick.files),
        chamber_uri=brick.chamber_uri,
        version=brick.version,
        licence=brick.licence,
        rating_average=brick.rating_average,
        rating_count=brick.rating_count,
        like_count=brick.like_count,
    )


def brick_article(federation: Federation, brick: Brick) -> dict[str, Any]:
    first = brick.authors[0].actor_uri if brick.authors else None
    cc = [f"{first}/followers"] if first and federation.is_local(first) else []
    chamber = federation.urls(federation.instance_username)
    if brick.local:
        cc.append(chamber.followers)
    return article(document_of(brick), tag_url=lambda t: tag_url(federation.base_url, t), cc=cc)


def is_author(brick: Brick, member: Member) -> bool:
    return any(a.member_id == member.id for a in brick.authors)


def _snapshot(brick: Brick) -> dict[str, Any]:
    return {
        "title": brick.title,
        "category": brick.category,
        "summary": brick.summary,
        "body": brick.body_markdown,
        "tags": brick.tag_names,
        "links": [link["href"] for link in brick.links],
        "files": [f["name"] for f in brick.files],
        "authors": [a.name for a in brick.authors],
    }


def set_tags(brick: Brick, tags: list[str]) -> None:
    current = {t.name: t for t in brick.tags}
    brick.tags = [current.get(name) or BrickTag(name=name) for name in tags]
    for position, tag in enumerate(brick.tags):
        tag.position = position
    brick.tags_text = " ".join(tags)


def set_authors(brick: Brick, refs: list[AuthorRef]) -> None:
    current = {a.actor_uri: a for a in brick.authors}
    authors = []
    for position, ref in enumerate(refs):
        row = current.get(ref.actor_uri) or BrickAuthor(actor_uri=ref.actor_uri)
        row.position = position
        row.name = ref.name
        row.profile_url = ref.profile_url
        row.member_id = ref.member_id
        authors.append(row)
    brick.authors = authors


async def _local_actor(session: AsyncSession, username: str) -> LocalActor:
    actor = await get_local_actor(session, username)
    if actor is None:
        raise FederationError(f"no local actor {username!r}")
    return actor


async def _audience_inboxes(
    federation: Federation, session: AsyncSession, brick: Brick, acting_uri: str
) -> list[str]:
    """Followers of the other local authors and the inboxes of remote co-authors."""
    inboxes: list[str] = []
    for author in brick.authors:
        if author.actor_uri == acting_uri:
            continue
        if federation.is_local(author.actor_uri):
            inboxes += await follower_inboxes(session, author.actor_uri)
        else:
            remote = (
                await session.execute(
                    select(RemoteActor).where(RemoteActor.uri == author.actor_uri)
                )
            ).scalar_one_or_none()
            if remote is not None and remote.gone_at is None:
                inboxes.append(remote.shared_inbox or remote.inbox)
    return inboxes


async def _federate(
    federation: Federation,
    session: AsyncSession,
    brick: Brick,
    member: Member,
    activity_type: str,
    obj: dict[str, Any],
) -> None:
    """Send ``activity_type`` to the authors' followers; the chamber boosts a new brick.

    An Update or a Delete goes, from the author, to every inbox the brick reached (through
    the author or the chamber's boost, recorded by the outbox) and to the current followers;
    the chamber never announces an Update or a Delete (Mastodon only takes boosts of posts),
    and after a Delete it undoes its boost."""
    actor = await _local_actor(session, member.username)
    urls = federation.urls(actor.username)
    chamber = await _local_actor(session, federation.instance_username)
    chamber_urls = federation.urls(chamber.username)
    creating = activity_type == "Create"
    await publish(
        federation,
        session,
        actor,
        {
            "id": new_activity_id(federation, actor),
            "type": activity_type,
            "object": obj,
            "to": [PUBLIC],
            "cc": [urls.followers, chamber_urls.followers],
        },
        to_followers=True,
        inboxes=await _audience_inboxes(federation, session, brick, urls.id),
        to_recipients_of=None if creating else brick.uri,
    )
    if creating:
        await publish(
            federation,
            session,
            chamber,
            {"type": "Announce", "object": obj, "to": [PUBLIC], "cc": [chamber_urls.followers]},
            to_followers=True,
        )
    elif activity_type == "Delete":
        boost = await last_sent(session, brick.uri, actor_uri=chamber_urls.id, types=["Announce"])
        if boost is not None:
            announce = {k: v for k, v in boost.document.items() if k not in ("@context", "proof")}
            await publish(
                federation,
                session,
                chamber,
                {
                    "type": "Undo",
                    "object": announce,
                    "to": [PUBLIC],
                    "cc": [chamber_urls.followers],
                },
                to_followers=True,
                to_recipients_of=brick.uri,
            )


def _apply(brick: Brick, data: BrickInput) -> None:
    brick.title = data.title
    brick.category = data.category
    brick.summary = data.summary
    brick.body_markdown = data.body
    brick.body_html = render_markdown(data.body)
    brick.body_text = html_to_text(brick.body_html)
    brick.links = [{"href": link, "name": link} for link in data.links]


async def create_brick(
    federation: Federation,
    session: AsyncSession,
    member: Member,
    data: BrickInput,
    *,
    authors: list[AuthorRef],
    files: list[dict[str, Any]] | None = None,
    published: BricksPublished | None = None,
) -> Brick:
    """A new local brick, version 1, federated as ``Create(Article)``; ``published`` is
    told which local members it counts for (``ContributionStats.bricks_published``)."""
    now = federation.clock()
    key = secrets.token_hex(8)
    uri = f"{federation.base_url}/bricks/{key}"
    brick = Brick(
        key=key,
        uri=uri,
        url=uri,
        local=True,
        host=urlsplit(federation.base_url).netloc,
        chamber_uri=federation.urls(federation.instance_username).id,
        licence=LICENCE_URL,
        version=1,
        files=list(files or []),
        published_at=now,
        updated_at=now,
        rating_sum=0,
        rating_count=0,
        like_count=0,
        authors=[],
        tags=[],
    )
    _apply(brick, data)
    set_tags(brick, data.tags)
    set_authors(brick, authors)
    session.add(brick)
    await session.flush()
    me = member_ref(federation, member)
    session.add(
        BrickVersion(
            brick_id=brick.id,
            version=1,
            editor_uri=me.actor_uri,
            editor_name=me.name,
            changed=list(EDITABLE),
            snapshot=_snapshot(brick),
            created_at=now,
        )
    )
    await session.flush()
    await _federate(federation, session, brick, member, "Create", brick_article(federation, brick))
    if published is not None:
        await published(session, _local_authors(brick))
    return brick


def _local_authors(brick: Brick) -> list[int]:
    return [a.member_id for a in brick.authors if a.member_id is not None]


async def update_brick(
    federation: Federation,
    session: AsyncSession,
    brick: Brick,
    member: Member,
    data: BrickInput,
    *,
    authors: list[AuthorRef] | None = None,
    add_files: list[dict[str, Any]] | None = None,
    remove_files: Iterable[str] = (),
    published: BricksPublished | None = None,
) -> list[str]:
    """Apply an edit by an author; a new version records who changed which fields.
    Returns the changed fields (none: nothing stored, nothing sent). ``published`` is told
    of local members who became co-authors."""
    if not brick.local:
        raise BrickForbidden("a brick from another chamber can only be edited there")
    if not is_author(brick, member):
        raise BrickForbidden("only the authors of a brick can edit it")
    before = _snapshot(brick)
    authors_before = set(_local_authors(brick))
    removed = set(remove_files)
    files = [f for f in brick.files if f["href"] not in removed] + list(add_files or [])
    _apply(brick, data)
    brick.files = files
    set_tags(brick, data.tags)
    if authors is not None:
        # The editing member stays an author; the others are as given.
        set_authors(brick, authors)
    after = _snapshot(brick)
    changed = [name for name in EDITABLE if before[name] != after[name]]
    if not changed:
        return []
    now = federation.clock()
    brick.version += 1
    brick.updated_at = now
    me = member_ref(federation, member)
    session.add(
        BrickVersion(
            brick_id=brick.id,
            version=brick.version,
            editor_uri=me.actor_uri,
            editor_name=me.name,
            changed=changed,
            snapshot=after,
            created_at=now,
        )
    )
    await session.flush()
    await _federate(federation, session, brick, member, "Update", brick_article(federation, brick))
    added = [m for m in _local_authors(brick) if m not in authors_before]
    if published is not None and added:
        await published(session, added)
    return changed


async def delete_brick(
    federation: Federation, session: AsyncSession, brick: Brick, member: Member
) -> None:
    if not brick.local:
        raise BrickForbidden("a brick from another chamber can only be deleted there")
    if not is_author(brick, member):
        raise BrickForbidden("only the authors of a brick can delete it")
    tombstone = {"id": brick.uri, "type": "Tombstone", "formerType": "Article"}
    await _federate(federation, session, brick, member, "Delete", tombstone)
    await unpin(session, "", brick.uri)
    await session.delete(brick)
    await session.flush()


async def pin_brick(
    federation: Federation,
    session: AsyncSession,
    brick: Brick,
    member: Member,
    *,
    for_chamber: bool,
    pinned: bool,
) -> str | None:
    """Pin (or unpin) a local brick on its author's profile, or with ``for_chamber`` on the
    chamber's (administrators). Returns the username whose ``featured`` changed, or None."""
    if not brick.local:
        raise BrickForbidden("only bricks of this chamber can be pinned")
    if for_chamber and not member.is_admin:
        raise BrickForbidden("only administrators pin bricks for the chamber")
    if not for_chamber and not is_author(brick, member):
        raise BrickForbidden("only the authors of a brick can pin it on their profile")
    username = federation.instance_username if for_chamber else member.username
    actor_uri = federation.urls(username).id
    changed = await (pin if pinned else unpin)(session, actor_uri, brick.uri)
    return username if changed else None


async def add_review(
    federation: Federation,
    session: AsyncSession,
    brick: Brick,
    member: Member,
    *,
    rating: Any,
    comment: Any,
) -> BrickReview:
    """A member used ``brick`` and rates it (1 to 5) with an optional comment; the review
    goes to the brick's authors and the member's followers as a reply (``Note``). One review
    per member and brick: reviewing again replaces it (an ``Update`` of the same ``Note``)."""
    errors = {}
    if isinstance(rating, str) and rating.strip().isdigit():
        rating = int(rating)
    if not isinstance(rating, int) or isinstance(rating, bool) or not 1 <= rating <= 5:
        errors["rating"] = i18n.gettext("give a rating from 1 to 5")
    if comment is None:
        comment = ""
    if not isinstance(comment, str):
        errors["comment"] = i18n.gettext("the comment must be text")
    elif len(comment) > MAX_COMMENT_CHARS:
        errors["comment"] = i18n.gettext(
            "the comment is too long: at most %(count)d characters"
        ) % {"count": MAX_COMMENT_CHARS}
    if errors:
        raise BrickInvalid(errors)
    if is_author(brick, member):
        raise BrickForbidden("authors do not rate their own brick")
    now = federation.clock()
    me = member_ref(federation, member)
    comment_html = render_markdown(comment.strip()) if comment.strip() else ""
    review = (
        await session.execute(
            select(BrickReview)
            .where(BrickReview.brick_id == brick.id, BrickReview.author_uri == me.actor_uri)
            .with_for_update()
        )
    ).scalar_one_or_none()
    verb = "Update" if review is not None else "Create"
    if review is None:
        review = BrickReview(
            uri=f"{federation.base_url}/reviews/{secrets.token_hex(8)}",
            brick_id=brick.id,
            author_uri=me.actor_uri,
            member_id=member.id,
            local=True,
        )
        session.add(review)
    elif review.rating is not None:
        brick.rating_sum -= review.rating
        brick.rating_count -= 1
    review.author_name = me.name
    review.author_url = me.profile_url
    review.rating = rating
    review.used = True
    review.comment_html = comment_html
    review.created_at = now
    brick.rating_sum += rating
    brick.rating_count += 1
    await session.flush()
    uri = review.uri
    await notify_review(session, brick, me.name, rating, member.id)
    actor = await _local_actor(session, member.username)
    urls = federation.urls(actor.username)
    authors = [a.actor_uri for a in brick.authors]
    note = review_note(
        uri=uri,
        author=urls.id,
        brick_uri=brick.uri,
        brick_title=brick.title,
        comment_html=comment_html,
        rating=rating,
        published=now,
        to=[PUBLIC],
        cc=[*authors, urls.followers],
    )
    inboxes = [] if brick.local else await _audience_inboxes(federation, session, brick, "")
    await publish(
        federation,
        session,
        actor,
        {"type": verb, "object": note, "to": [PUBLIC], "cc": [*authors, urls.followers]},
        to_followers=True,
        inboxes=inboxes,
        to_recipients_of=uri if verb == "Update" else None,
        now=now,
    )
    return review


async def contribution_stats(
    session: AsyncSession, member_id: int
) -> tuple[int, float | None, int]:
    """(local bricks the member co-authored, average rating others gave them, how many)."""
    published = (
        await session.execute(
            select(func.count(func.distinct(Brick.id)))
            .join(BrickAuthor, BrickAuthor.brick_id == Brick.id)
            .where(BrickAuthor.member_id == member_id, Brick.local.is_(True))
        )
    ).scalar_one()
    total, count = (
        await session.execute(
            select(func.coalesce(func.sum(BrickReview.rating), 0), func.count(BrickReview.id))
            .join(BrickAuthor, BrickAuthor.brick_id == BrickReview.brick_id)
            .where(BrickAuthor.member_id == member_id, BrickReview.rating.is_not(None))
        )
    ).one()
    count = int(count)
    average = round(int(total or 0) / count, 2) if count else None
    return int(published or 0), average, count


async def brick_stats(session: AsyncSession, member: Member) -> BrickStats:
    """The commons bank's source for ``node.members.contributions.ContributionStats``."""
    published, average, count = await contribution_stats(session, member.id)
    recent = (
        await session.execute(
            select(Brick.title, Brick.url)
            .join(BrickAuthor, BrickAuthor.brick_id == Brick.id)
            .where(BrickAuthor.member_id == member.id, Brick.local.is_(True))
            .order_by(Brick.id.desc())
            .limit(10)
        )
    ).all()
    return BrickStats(
        published=published,
        recent=tuple(BrickLink(title=title, url=url) for title, url in recent),
        rating_average=average,
        rating_count=count,
    )
