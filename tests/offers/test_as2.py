"""Offers as FEP-0837 Proposals, both ways (pure), and their context expanded offline."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from node.activitypub.jsonld import expand, proposal_context
from node.offers.as2 import (
    PUBLIC,
    OfferDocument,
    ProposalInvalid,
    hours_text,
    is_proposal,
    parse_proposal,
    proposal,
)

NOW = datetime(2027, 3, 1, 10, 0, tzinfo=UTC)
GAND = "https://gand.example"


def offer_doc(**changes: Any) -> OfferDocument:
    doc = OfferDocument(
        uri=f"{GAND}/offers/o1",
        url=f"{GAND}/offers/o1",
        kind="offer",
        title="Traduction NL-FR",
        description_html="<p>Je traduis vos <em>lettres</em>.</p>",
        author=f"{GAND}/actors/piet",
        published=NOW,
        updated=NOW,
        tags=["traduction", "nl"],
        minutes=90,
        bricks=[f"{GAND}/bricks/b1"],
        chamber_uri=f"{GAND}/actors/gand",
    )
    for name, value in changes.items():
        setattr(doc, name, value)
    return doc


def to_proposal(**changes: Any) -> dict[str, Any]:
    return proposal(
        offer_doc(**changes),
        headline="Je propose : Traduction NL-FR · 1 h 30",
        tag_url=lambda t: f"{GAND}/offers?tag={t}",
        cc=[f"{GAND}/actors/piet/followers"],
    )


def test_an_offer_is_a_fep_0837_proposal_a_mastodon_user_can_read() -> None:
    obj = to_proposal()
    assert obj["type"] == ["Note", "Proposal"]  # Note first: Misskey reads the first type
    assert obj["purpose"] == "offer"
    assert obj["attributedTo"] == f"{GAND}/actors/piet"
    assert obj["publishes"] == {
        "id": f"{GAND}/offers/o1#primary",
        "type": "Intent",
        "action": "deliverService",
        "resourceQuantity": {"hasUnit": "hour", "hasNumericalValue": "1.5"},
    }
    assert obj["name"] == "Traduction NL-FR"
    assert obj["summary"] == "Je propose : Traduction NL-FR · 1 h 30"
    assert obj["content"].startswith("<p><strong>Je propose : Traduction NL-FR · 1 h 30</strong>")
    assert "<p>Je traduis vos <em>lettres</em>.</p>" in obj["content"]
    assert f'href="{GAND}/offers?tag=nl"' in obj["content"]  # hashtags readable as links
    assert obj["tag"][0] == {
        "type": "Hashtag",
        "href": f"{GAND}/offers?tag=traduction",
        "name": "#traduction",
    }
    assert obj["url"] == f"{GAND}/offers/o1" and obj["to"] == [PUBLIC]
    assert obj["minutes"] == 90 and obj["chamber"] == f"{GAND}/actors/gand"


def test_a_need_is_a_request_and_an_estimate_is_optional() -> None:
    obj = to_proposal(kind="need", minutes=None)
    assert obj["purpose"] == "request"
    assert obj["publishes"]["resourceQuantity"] == {"hasUnit": "hour"}
    assert "minutes" not in obj
    assert parse_proposal(obj, now=NOW).minutes is None


def test_hours_are_decimal_strings() -> None:
    assert [hours_text(m) for m in (60, 90, 45, 20, 6000)] == ["1", "1.5", "0.75", "0.3333", "100"]


def test_round_trip() -> None:
    doc = parse_proposal(to_proposal(), now=NOW)
    assert (doc.uri, doc.kind, doc.title, doc.minutes) == (
        f"{GAND}/offers/o1",
        "offer",
        "Traduction NL-FR",
        90,
    )
    assert doc.tags == ["traduction", "nl"] and doc.bricks == [f"{GAND}/bricks/b1"]
    assert doc.author == f"{GAND}/actors/piet" and doc.chamber_uri == f"{GAND}/actors/gand"


def test_a_proposal_from_other_software_is_read_from_the_fep_fields() -> None:
    """Mitra's shape: type Proposal, hours only in resourceQuantity, no minutes of ours."""
    obj = {
        "id": "https://market.example/proposals/p1",
        "type": "Proposal",
        "purpose": "request",
        "attributedTo": "https://market.example/users/alice",
        "name": "Aide pour un dossier de subvention",
        "content": "<p>Deux heures<script>alert(1)</script></p>",
        "publishes": {
            "type": "Intent",
            "id": "https://market.example/proposals/p1#primary",
            "action": "deliverService",
            "resourceQuantity": {"hasUnit": "hour", "hasNumericalValue": "2"},
        },
        "to": PUBLIC,
    }
    assert is_proposal(obj)
    doc = parse_proposal(obj, now=NOW)
    assert doc.kind == "need" and doc.minutes == 120 and doc.published == NOW
    assert "<script>" not in doc.description_html and "Deux heures" in doc.description_html


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"purpose": "gift"}, "purpose"),
        ({"attributedTo": None}, "attributedTo"),
        ({"id": "urn:x"}, "id"),
        ({"name": "", "summary": ""}, "name"),
    ],
)
def test_what_is_refused(changes: dict[str, Any], why: str) -> None:
    obj = {**to_proposal(), **changes}
    with pytest.raises(ProposalInvalid, match=why):
        parse_proposal(obj, now=NOW)


def test_a_plain_note_is_not_a_proposal() -> None:
    assert not is_proposal({"type": "Note", "content": "hello"})
    assert not is_proposal("https://x.example/notes/1")


def test_absurd_quantities_are_dropped() -> None:
    obj = to_proposal()
    del obj["minutes"]
    obj["publishes"]["resourceQuantity"]["hasNumericalValue"] = "1e9"
    assert parse_proposal(obj, now=NOW).minutes is None
    obj["publishes"]["resourceQuantity"]["hasNumericalValue"] = "NaN"
    assert parse_proposal(obj, now=NOW).minutes is None


def test_the_activity_expands_with_bundled_contexts_only() -> None:
    """No context is fetched: the FEP-0837 terms are bundled and inlined; they expand to
    the ValueFlows and OM 2 vocabularies."""
    document = {"@context": proposal_context(), **to_proposal()}
    (expanded,) = expand(document)
    vf = "https://w3id.org/valueflows/ont/vf#"
    assert f"{vf}Proposal" in expanded["@type"]
    assert "https://www.w3.org/ns/activitystreams#Note" in expanded["@type"]
    assert expanded[f"{vf}purpose"] == [{"@value": "offer"}]
    (intent,) = expanded[f"{vf}publishes"]
    assert intent["@type"] == [f"{vf}Intent"]
    (quantity,) = intent[f"{vf}resourceQuantity"]
    om2 = "http://www.ontology-of-units-of-measure.org/resource/om-2/"
    assert quantity[f"{om2}hasUnit"] == [{"@value": "hour"}]
