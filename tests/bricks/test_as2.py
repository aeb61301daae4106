"""Bricks as AS2 Articles both ways; the Article expands with pyld on bundled contexts."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from node.activitypub.jsonld import default_context, expand
from node.bricks.as2 import (
    ArticleInvalid,
    BrickDocument,
    article,
    parse_article,
    parse_reply,
    review_note,
)

AS = "https://www.w3.org/ns/activitystreams#"
ARCHIPEL = "https://archipel.social/ns#"
WHEN = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def a_brick() -> BrickDocument:
    return BrickDocument(
        uri="https://lille.example/bricks/abc",
        url="https://lille.example/bricks/abc",
        title="Le jardin partagé",
        category="methode",
        summary="Comment ouvrir un jardin\nen trois saisons.",
        body_html="<p>Étapes</p>",
        body_markdown="Étapes",
        authors=["https://lille.example/actors/marie", "https://gand.example/actors/piet"],
        published=WHEN,
        updated=WHEN,
        tags=["jardin", "quartier"],
        links=[{"href": "https://example.org/j", "name": "Jardins"}],
        files=[
            {
                "href": "https://lille.example/files/ab.pdf",
                "name": "plan.pdf",
                "mediaType": "application/pdf",
            }
        ],
        chamber_uri="https://lille.example/actors/lille",
        version=3,
        rating_average=4.5,
        rating_count=2,
        like_count=7,
    )


def to_article() -> dict[str, Any]:
    return article(a_brick(), tag_url=lambda t: f"https://lille.example/tags/{t}")


def test_article_has_what_mastodon_shows() -> None:
    obj = to_article()
    assert obj["type"] == "Article" and obj["name"] == "Le jardin partagé"
    assert obj["summary"] == "Comment ouvrir un jardin<br>en trois saisons."
    assert obj["url"] == obj["id"]
    assert obj["tag"] == [
        {"type": "Hashtag", "href": "https://lille.example/tags/jardin", "name": "#jardin"},
        {"type": "Hashtag", "href": "https://lille.example/tags/quartier", "name": "#quartier"},
    ]
    assert obj["attributedTo"][1] == "https://gand.example/actors/piet"
    assert obj["license"] == "https://creativecommons.org/licenses/by-sa/4.0/"
    assert {a["type"] for a in obj["attachment"]} == {"Link", "Document"}
    assert obj["published"] == "2026-11-23T10:00:00Z"
    assert obj["categoryLabel"]["fr"] == "Méthode"


def test_article_expands_with_pyld() -> None:
    [expanded] = expand({"@context": default_context(), **to_article()})
    assert expanded["@type"] == [AS + "Article"]
    assert expanded[AS + "name"][0]["@value"] == "Le jardin partagé"
    assert expanded[ARCHIPEL + "category"][0]["@value"] == "methode"
    assert expanded[ARCHIPEL + "version"][0]["@value"] == 3
    assert expanded[ARCHIPEL + "ratingAverage"][0]["@value"] == 4.5
    assert expanded[ARCHIPEL + "ratingCount"][0]["@value"] == 2
    assert expanded[ARCHIPEL + "chamber"][0]["@id"] == "https://lille.example/actors/lille"
    assert {"@value": "Méthode", "@language": "fr"} in expanded[ARCHIPEL + "categoryLabel"]
    assert expanded["https://schema.org/license"][0]["@id"].startswith("https://creativecommons")
    tags = expanded[AS + "tag"]
    assert tags[0]["@type"] == [AS + "Hashtag"]
    assert tags[0][AS + "href"][0]["@id"] == "https://lille.example/tags/jardin"


def test_round_trip() -> None:
    parsed = parse_article(to_article())
    original = a_brick()
    for name in ("uri", "url", "title", "category", "summary", "body_html", "authors", "tags",
                 "links", "published", "updated", "chamber_uri", "version", "rating_average",
                 "rating_count", "like_count", "licence"):  # fmt: skip
        assert getattr(parsed, name) == getattr(original, name), name
    assert parsed.files[0]["href"] == original.files[0]["href"]


def test_remote_articles_are_sanitized_and_bounded() -> None:
    obj = {
        **to_article(),
        "name": "<b>Titre</b>" + "x" * 500,
        "content": '<p onclick="x()">ok<script>alert(1)</script></p>',
        "summary": "<p>Un</p><p>Deux</p>",
        "tag": [{"type": "Hashtag", "name": "#Vélo"}, {"type": "Mention", "name": "@x"}],
        "attachment": [{"type": "Link", "href": "javascript:alert(1)"}],
    }
    parsed = parse_article(obj)
    assert parsed.title.startswith("Titre") and len(parsed.title) == 150
    assert parsed.body_html == "<p>ok</p>"
    assert parsed.summary == "Un\nDeux"
    assert parsed.tags == ["vélo"] and parsed.links == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"type": "Note"}, "not an Article"),
        ({"category": None}, "category"),
        ({"attributedTo": []}, "attributed"),
        ({"id": "urn:x"}, "id"),
    ],
)
def test_what_is_not_a_brick(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ArticleInvalid, match=message):
        parse_article({**to_article(), **change})


def test_review_note_is_a_reply_with_a_rating() -> None:
    note = review_note(
        uri="https://gand.example/reviews/1",
        author="https://gand.example/actors/piet",
        brick_uri="https://lille.example/bricks/abc",
        brick_title="Le jardin",
        comment_html="<p>Utile</p>",
        rating=4,
        published=WHEN,
        to=["https://www.w3.org/ns/activitystreams#Public"],
        cc=["https://lille.example/actors/marie"],
    )
    assert note["type"] == "Note" and note["inReplyTo"] == "https://lille.example/bricks/abc"
    assert "★★★★☆" in note["content"]
    [expanded] = expand({"@context": default_context(), **note})
    assert expanded[ARCHIPEL + "rating"][0]["@value"] == 4
    reply = parse_reply(note)
    assert reply is not None and reply.rating == 4 and reply.author.endswith("/piet")
    assert parse_reply({**note, "rating": 9}).rating is None  # type: ignore[union-attr]
    assert parse_reply({**note, "inReplyTo": None}) is None
