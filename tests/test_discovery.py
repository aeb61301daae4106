import httpx
import pytest

from node.config import Settings
from node.db import session_scope
from node.members.models import MemberStatus
from node.members.service import create_member


async def add_member(app, settings: Settings, username: str, status: str = MemberStatus.APPROVED):  # type: ignore[no-untyped-def]
    node = app.state.node
    async with session_scope(node.sessionmaker) as session:
        return await create_member(
            session,
            node.box,
            username=username,
            chamber_username=settings.chamber_username,
            status=status,
            display_name=username.title(),
        )


async def test_webfinger_finds_the_chamber(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/.well-known/webfinger", params={"resource": "acct:lille@lille.test"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/jrd+json")
    assert response.headers["access-control-allow-origin"] == "*"
    body = response.json()
    assert body["subject"] == "acct:lille@lille.test"
    links = {link["rel"]: link for link in body["links"]}
    assert links["self"] == {
        "rel": "self",
        "type": "application/activity+json",
        "href": "https://lille.test/actors/lille",
    }
    assert links["http://webfinger.net/rel/profile-page"]["href"] == "https://lille.test/"


async def test_webfinger_finds_a_member_by_handle_and_by_url(app, client, settings) -> None:  # type: ignore[no-untyped-def]
    await add_member(app, settings, "marie")
    for resource in (
        "acct:marie@lille.test",
        "acct:MARIE@LILLE.TEST",
        "https://lille.test/actors/marie",
        "https://lille.test/@marie",
    ):
        response = await client.get("/.well-known/webfinger", params={"resource": resource})
        assert response.status_code == 200, resource
        body = response.json()
        assert body["subject"] == "acct:marie@lille.test"
        assert "https://lille.test/actors/marie" in body["aliases"]
        assert "https://lille.test/@marie" in body["aliases"]


@pytest.mark.parametrize(
    ("params", "status", "message"),
    [
        ({}, 400, "resource query parameter is required"),
        ({"resource": "marie"}, 400, "acct:user@host"),
        ({"resource": "acct:@lille.test"}, 400, "acct:user@host"),
        ({"resource": "acct:nobody@lille.test"}, 404, "no account 'nobody'"),
        ({"resource": "acct:lille@gand.test"}, 404, "is not this node"),
        ({"resource": "https://gand.test/actors/x"}, 404, "not on this node"),
        ({"resource": "https://lille.test/bricks/1"}, 404, "not an actor"),
        ({"resource": "acct:" + "a" * 600 + "@lille.test"}, 400, "too long"),
    ],
)
async def test_webfinger_errors_are_clear(
    client: httpx.AsyncClient, params: dict[str, str], status: int, message: str
) -> None:
    response = await client.get("/.well-known/webfinger", params=params)
    assert response.status_code == status
    assert message in response.json()["error"]


async def test_pending_members_are_not_discoverable(app, client, settings) -> None:  # type: ignore[no-untyped-def]
    await add_member(app, settings, "paul", status=MemberStatus.PENDING)
    response = await client.get(
        "/.well-known/webfinger", params={"resource": "acct:paul@lille.test"}
    )
    assert response.status_code == 404
    assert (
        await client.get("/actors/paul", headers={"Accept": "application/activity+json"})
    ).status_code == 404


async def test_host_meta_xml_and_json(client: httpx.AsyncClient) -> None:
    xml = await client.get("/.well-known/host-meta")
    assert xml.headers["content-type"].startswith("application/xrd+xml")
    assert 'template="https://lille.test/.well-known/webfinger?resource={uri}"' in xml.text
    as_json = await client.get("/.well-known/host-meta", headers={"Accept": "application/json"})
    assert as_json.json()["links"][0]["template"].endswith("webfinger?resource={uri}")


async def test_nodeinfo(app, client, settings) -> None:  # type: ignore[no-untyped-def]
    await add_member(app, settings, "marie")
    await add_member(app, settings, "paul", status=MemberStatus.PENDING)
    links = (await client.get("/.well-known/nodeinfo")).json()["links"]
    assert links == [
        {
            "rel": "http://nodeinfo.diaspora.software/ns/schema/2.1",
            "href": "https://lille.test/nodeinfo/2.1",
        }
    ]
    response = await client.get("/nodeinfo/2.1")
    assert "schema/2.1" in response.headers["content-type"]
    info = response.json()
    assert info["version"] == "2.1"
    assert info["software"]["name"] == "archipel"
    assert info["protocols"] == ["activitypub"]
    assert info["usage"]["users"]["total"] == 1  # the approved member, not the pending one
    assert info["metadata"]["nodeName"] == "Chambre des communs de Lille"
    assert info["metadata"]["chamber"]["actor"] == "https://lille.test/actors/lille"


async def test_healthz(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}


async def test_healthz_reports_a_dead_database(app, client) -> None:  # type: ignore[no-untyped-def]
    from node.db import make_engine

    node = app.state.node
    original = node.engine
    node.engine = make_engine("postgresql+asyncpg://nobody@127.0.0.1:1/none")
    try:
        response = await client.get("/healthz")
    finally:
        await node.engine.dispose()
        node.engine = original
    assert response.status_code == 503
    assert response.json()["status"] == "error"
