"""A declaration to a member of a chamber that is down is retryable (503 with Retry-After),
unlike a handle that does not exist there (422 on the field)."""

from __future__ import annotations

from node.config import Settings
from tests.clearing._chambers import bearer, two_chambers
from tests.harness.plugin import OpenArchipelago


async def test_a_chamber_that_is_down_answers_503_and_a_typo_422(
    settings: Settings, archipelago: OpenArchipelago
) -> None:
    async with two_chambers(archipelago, settings) as (lille, gand):
        alice = await lille.member("alice")
        await gand.member("bob")
        body = {"beneficiary": "@nobody@gand.test", "minutes": 60, "description": "Un atelier"}
        typo = await lille.client.post("/api/v1/exchanges", json=body, headers=bearer(alice))
        assert typo.status_code == 422, typo.text
        assert typo.json()["field"] == "beneficiary"

        gand_transport = lille.network.transports.pop("gand.test")  # Gand is down
        body["beneficiary"] = "@bob@gand.test"
        down = await lille.client.post("/api/v1/exchanges", json=body, headers=bearer(alice))
        assert down.status_code == 503, down.text
        assert int(down.headers["Retry-After"]) > 0
        assert down.json()["field"] == "beneficiary"

        lille.network.transports["gand.test"] = gand_transport  # back: the same request works
        again = await lille.client.post("/api/v1/exchanges", json=body, headers=bearer(alice))
        assert again.status_code == 201, again.text
