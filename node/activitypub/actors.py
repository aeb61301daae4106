"""Local actors: where they live (URLs), how they are created, and their AS2 documents.

The protocol layer does not know what a member or a chamber is: callers pass an
``ActorProfile`` with what the document shows (name, summary, page URL, extra terms).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from node.activitypub.jsonld import default_context
from node.activitypub.keys import generate_actor_keys, seal_actor_keys
from node.activitypub.models import LocalActor
from node.secretbox import SecretBox

__all__ = [
    "ActorProfile",
    "ActorUrls",
    "actor_document",
    "create_local_actor",
    "get_local_actor",
]

ACTOR_TYPES = ("Person", "Group", "Service", "Application", "Organization")


@dataclass(frozen=True)
class ActorUrls:
    """Every URL of a local actor, derived from the node's base URL and the username."""

    base_url: str
    username: str

    @property
    def id(self) -> str:
        return f"{self.base_url}/actors/{self.username}"

    @property
    def inbox(self) -> str:
        return f"{self.id}/inbox"

    @property
    def outbox(self) -> str:
        return f"{self.id}/outbox"

    @property
    def followers(self) -> str:
        return f"{self.id}/followers"

    @property
    def following(self) -> str:
        return f"{self.id}/following"

    @property
    def featured(self) -> str:
        return f"{self.id}/collections/featured"

    @property
    def shared_inbox(self) -> str:
        return f"{self.base_url}/inbox"

    @property
    def rsa_key_id(self) -> str:
        return f"{self.id}#main-key"

    @property
    def ed25519_key_id(self) -> str:
        return f"{self.id}#ed25519-key"


@dataclass(frozen=True)
class ActorProfile:
    """What a document shows about an actor; filled by the domain that owns it."""

    name: str
    summary_html: str
    page_url: str
    icon_url: str | None = None
    image_url: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def actor_document(actor: LocalActor, base_url: str, profile: ActorProfile) -> dict[str, Any]:
    """The actor as AS2 JSON-LD: RSA ``publicKey`` for Mastodon, Ed25519 Multikey for proofs."""
    urls = ActorUrls(base_url, actor.username)
    doc: dict[str, Any] = {
        "@context": default_context(),
        "id": urls.id,
        "type": actor.actor_type,
        "preferredUsername": actor.username,
        "name": profile.name,
        "summary": profile.summary_html,
        "url": profile.page_url,
        "inbox": urls.inbox,
        "outbox": urls.outbox,
        "followers": urls.followers,
        "following": urls.following,
        "featured": urls.featured,
        "endpoints": {"sharedInbox": urls.shared_inbox},
        "manuallyApprovesFollowers": actor.manually_approves_followers,
        "discoverable": True,
        "published": actor.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "publicKey": {
            "id": urls.rsa_key_id,
            "owner": urls.id,
            "publicKeyPem": actor.rsa_public_pem,
        },
        "assertionMethod": [
            {
                "id": urls.ed25519_key_id,
                "type": "Multikey",
                "controller": urls.id,
                "publicKeyMultibase": actor.ed25519_public_multibase,
            }
        ],
    }
    icon = profile.icon_url or actor.icon_url
    if icon:
        doc["icon"] = {"type": "Image", "url": icon}
    image = profile.image_url or actor.image_url
    if image:
        doc["image"] = {"type": "Image", "url": image}
    doc.update(profile.extra)
    return doc


async def create_local_actor(
    session: AsyncSession,
    box: SecretBox,
    *,
    username: str,
    actor_type: str,
    manually_approves_followers: bool = False,
) -> LocalActor:
    """Create an actor with fresh keys (RSA generation takes a few tens of milliseconds)."""
    if actor_type not in ACTOR_TYPES:
        raise ValueError(f"unknown actor type {actor_type!r}")
    sealed = seal_actor_keys(generate_actor_keys(), box)
    actor = LocalActor(
        username=username,
        actor_type=actor_type,
        manually_approves_followers=manually_approves_followers,
        rsa_public_pem=sealed.rsa_public_pem,
        rsa_private_sealed=sealed.rsa_private_sealed,
        ed25519_public_multibase=sealed.ed25519_public_multibase,
        ed25519_private_sealed=sealed.ed25519_private_sealed,
    )
    session.add(actor)
    await session.flush()
    return actor


async def get_local_actor(session: AsyncSession, username: str) -> LocalActor | None:
    return (
        await session.execute(select(LocalActor).where(LocalActor.username == username))
    ).scalar_one_or_none()
