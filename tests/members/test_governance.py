"""Registration, the administrators' college and the audit log, on a real database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from node.activitypub.models import DomainBlock, StoredActivity
from node.config import Settings
from node.db import make_engine, make_sessionmaker, session_scope
from node.members import accounts, charter, governance
from node.members.audit import list_audit
from node.members.clearing_access import (
    ClearingAccessDenied,
    clearing_access,
    require_clearing_access,
)
from node.members.contributions import BrickStats, ContributionStats
from node.members.errors import (
    InvalidMemberInput,
    InvalidTransition,
    LastAdministrator,
    LoginRefused,
    NotAllowed,
)
from node.members.models import Member, MemberRole, MemberStates, MemberStatus
from node.members.service import create_member
from node.process_store import moves_of
from node.secretbox import SecretBox

NOW = datetime(2026, 11, 12, 10, 0, tzinfo=UTC)
PASSWORD = "correct horse battery"


@pytest.fixture
async def sessionmaker(settings: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = make_engine(settings.database_url)
    yield make_sessionmaker(engine)
    await engine.dispose()


async def _member(
    session: AsyncSession,
    settings: Settings,
    username: str,
    *,
    role: str = MemberRole.MEMBER,
    status: str = MemberStatus.APPROVED,
) -> Member:
    return await create_member(
        session,
        SecretBox(settings.secret_key),
        username=username,
        chamber_username=settings.chamber_username,
        password=PASSWORD,
        status=status,
        role=role,
        now=NOW,
    )


async def test_registration_needs_the_charter_in_force(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    box = SecretBox(settings.secret_key)
    async with session_scope(sessionmaker) as session:
        current = await charter.current_charter(session)
        assert current.version == 1
        for accepted in (None, 7):
            with pytest.raises(InvalidMemberInput) as caught:
                await accounts.register_member(
                    session,
                    box,
                    chamber_username="lille",
                    username="marie",
                    password=PASSWORD,
                    accepted_charter_version=accepted,
                )
            assert caught.value.field == "charter"
        member = await accounts.register_member(
            session,
            box,
            chamber_username="lille",
            username="marie",
            password=PASSWORD,
            accepted_charter_version=1,
            language="en",
        )
        assert member.status == MemberStatus.PENDING
        assert member.charter_version == 1 and member.language == "en"


async def test_the_charter_is_versioned_and_edits_are_logged(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    async with session_scope(sessionmaker) as session:
        admin = await _member(session, settings, "ada", role=MemberRole.ADMIN)
        new = await charter.edit_charter(session, admin, "Nouvelle charte.", "clearer wording")
        assert new.version == 2
        assert (await charter.get_charter(session, 1)) is not None
        assert (await charter.current_charter(session)).text == "Nouvelle charte."
        with pytest.raises(InvalidMemberInput):
            await charter.edit_charter(session, admin, "   ")
        entries, total = await list_audit(session)
    assert total == 1
    assert (entries[0].by, entries[0].action, entries[0].reason) == (
        "ada",
        "charter.edit",
        "clearer wording",
    )


async def test_approve_refuse_and_who_may_sign_in(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    async with session_scope(sessionmaker) as session:
        admin = await _member(session, settings, "ada", role=MemberRole.ADMIN)
        plain = await _member(session, settings, "bob")
        marie = await _member(session, settings, "marie", status=MemberStatus.PENDING)
        paul = await _member(session, settings, "paul", status=MemberStatus.PENDING)
        with pytest.raises(LoginRefused) as refused:
            accounts.ensure_may_sign_in(marie)
        assert refused.value.status == "pending"
        with pytest.raises(NotAllowed):
            await governance.approve_member(session, plain, marie)
        with pytest.raises(InvalidMemberInput):
            await governance.refuse_member(session, admin, paul, "  ")
        await governance.approve_member(session, admin, marie, now=NOW)
        assert marie.status == MemberStatus.APPROVED and marie.approved_at == NOW
        accounts.ensure_may_sign_in(marie)
        await governance.refuse_member(session, admin, paul, "not a resident of Lille")
        with pytest.raises(LoginRefused) as refused:
            accounts.ensure_may_sign_in(paul)
        assert refused.value.reason == "not a resident of Lille"
        with pytest.raises(InvalidTransition):
            await governance.refuse_member(session, admin, marie, "too late")
        await governance.suspend_member(session, admin, marie, "spam")
        with pytest.raises(LoginRefused) as refused:
            accounts.ensure_may_sign_in(marie)
        assert (refused.value.status, refused.value.reason) == ("suspended", "spam")
        await governance.reinstate_member(session, None, marie)
        entries, _ = await list_audit(session)
        moves = await moves_of(session, MemberStates, "marie")
        with pytest.raises(InvalidMemberInput):
            await _member(session, settings, "zoe", status=MemberStatus.SUSPENDED)
    # Every change of standing went through the member's graph and was recorded.
    assert [(m.before, m.after, m.by, m.reason) for m in moves] == [
        (None, "pending", "", ""),
        ("pending", "approved", "ada", ""),
        ("approved", "suspended", "ada", "spam"),
        ("suspended", "approved", "operator", ""),
    ]
    assert [(e.by, e.action, e.target) for e in reversed(entries)] == [
        ("ada", "member.approve", "marie"),
        ("ada", "member.refuse", "paul"),
        ("ada", "member.suspend", "marie"),
        ("operator", "member.reinstate", "marie"),
    ]


async def test_the_last_administrator_stays(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    async with session_scope(sessionmaker) as session:
        ada = await _member(session, settings, "ada", role=MemberRole.ADMIN)
        bob = await _member(session, settings, "bob")
        with pytest.raises(LastAdministrator):
            await governance.demote_admin(session, ada, ada)
        with pytest.raises(LastAdministrator):
            await governance.suspend_member(session, None, ada, "holiday")
        await governance.promote_admin(session, ada, bob, "second pair of eyes")
        assert await governance.count_admins(session) == 2
        await governance.demote_admin(session, bob, ada, "stepping down")
        assert ada.role == MemberRole.MEMBER
        with pytest.raises(NotAllowed):
            await governance.promote_admin(session, ada, ada)
        with pytest.raises(LastAdministrator):
            await governance.demote_admin(session, bob, bob)


async def test_clearing_access_by_rule_and_by_hand(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    stats = ContributionStats()
    async with session_scope(sessionmaker) as session:
        admin = await _member(session, settings, "ada", role=MemberRole.ADMIN)
        marie = await _member(session, settings, "marie")
        later = NOW + timedelta(days=200)
        access = await clearing_access(session, settings, stats, marie, now=later)
        assert not access.allowed and len(access.missing) == 1  # zero bricks by default

        async def one_brick(session: AsyncSession, member: Member) -> BrickStats:
            return BrickStats(published=1)

        stats.register_bricks(one_brick)
        await require_clearing_access(session, settings, stats, marie, now=later)
        with pytest.raises(InvalidMemberInput):
            await governance.set_clearing_access(session, admin, marie, "revoked", "")
        await governance.set_clearing_access(session, admin, marie, "revoked", "disputes")
        with pytest.raises(ClearingAccessDenied):
            await require_clearing_access(session, settings, stats, marie, now=later)
        await governance.set_clearing_access(session, admin, marie, None, "settled")
        assert (await clearing_access(session, settings, stats, marie, now=later)).allowed
        entries, _ = await list_audit(session)
    assert [e.action for e in entries] == ["clearing.grant", "clearing.revoke"]
    assert entries[0].details == {"decision": "rule"}


async def test_domain_blocks_and_remote_content_are_logged(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    spammer = "https://spam.example/users/x"
    async with session_scope(sessionmaker) as session:
        admin = await _member(session, settings, "ada", role=MemberRole.ADMIN)
        session.add(
            StoredActivity(
                activity_id=spammer + "/1",
                direction="in",
                actor_uri=spammer,
                activity_type="Create",
                document={},
            )
        )
        await session.flush()
        await governance.block_domain(session, admin, "Spam.Example", "spam")
        assert await session.get(DomainBlock, "spam.example") is not None
        assert await governance.remove_remote_content(session, admin, spammer, "spam") == 1
        left = (await session.execute(select(StoredActivity))).scalars().all()
        assert left == []
        assert await governance.unblock_domain(session, admin, "spam.example")
        entries, _ = await list_audit(session)
    assert [e.action for e in reversed(entries)] == [
        "domain.block",
        "remote.remove",
        "domain.unblock",
    ]


async def test_password_change(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    async with session_scope(sessionmaker) as session:
        marie = await _member(session, settings, "marie")
        with pytest.raises(InvalidMemberInput):
            await accounts.change_password(session, marie, "wrong one!!", "a new password")
        with pytest.raises(InvalidMemberInput):
            await accounts.change_password(session, marie, PASSWORD, "short")
        await accounts.change_password(session, marie, PASSWORD, "a new password")
        assert await accounts.verify_login(session, "marie", "a new password") is not None
