"""Each bad field gives its own message; files are checked by type, content and size."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from node import i18n
from node.bricks.validation import (
    MAX_FILE_BYTES,
    BrickInvalid,
    check_file,
    parse_category,
    validate_brick,
)


@pytest.fixture(autouse=True)
def in_english() -> Iterator[None]:
    """Messages are checked in English (the language of a request decides, node.i18n)."""
    before = i18n.current_language()
    i18n.use_language("en")
    yield
    i18n.use_language(before)


GOOD: dict[str, Any] = {
    "title": "Le jardin partagé",
    "category": "methode",
    "summary": "Cinq lignes au plus.",
    "body": "Du *Markdown*.",
    "tags": "jardin, #Quartier , jardin",
    "links": "https://example.org/a\n\nhttps://example.org/b",
}


def errors_for(**changes: Any) -> dict[str, str]:
    with pytest.raises(BrickInvalid) as raised:
        validate_brick({**GOOD, **changes})
    return raised.value.errors


def test_a_tag_typed_with_spaces_becomes_hyphenated() -> None:
    brick = validate_brick({**GOOD, "tags": "communs urbains, #Tiers  Lieu"})
    assert brick.tags == ["communs-urbains", "tiers-lieu"]


def test_messages_follow_the_language_of_the_request() -> None:
    before = i18n.current_language()
    i18n.use_language("fr")
    try:
        assert errors_for(title="")["title"] == "donnez un titre d’au moins 3 caractères"
        i18n.use_language("en")
        assert errors_for(title="")["title"] == "give a title of at least 3 characters"
    finally:
        i18n.use_language(before)


def test_a_good_brick_is_normalized() -> None:
    brick = validate_brick(GOOD)
    assert brick.tags == ["jardin", "quartier"]
    assert brick.links == ["https://example.org/a", "https://example.org/b"]
    assert brick.category == "methode"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("title", "", "at least 3 characters"),
        ("title", "x" * 151, "too long"),
        ("title", "deux\nlignes", "one line"),
        ("title", 12, "must be text"),
        ("category", "poésie", "concept, analyse or methode"),
        ("category", None, "choose a category"),
        ("summary", "", "short description"),
        ("summary", "a\nb\nc\nd\ne\nf", "too many lines"),
        ("summary", "x" * 501, "about five lines"),
        ("body", "", "development"),
        ("body", "x" * 100_001, "too long"),
        ("tags", "ok, pas bien!", "'pas bien!' is not valid"),
        ("tags", ",".join(f"t{i}" for i in range(11)), "too many tags"),
        ("tags", 3, "list of words"),
        ("links", "ftp://example.org", "not a web address"),
        ("links", "javascript:alert(1)", "not a web address"),
        ("authors", [f"m{i}" for i in range(11)], "too many authors"),
    ],
)
def test_each_bad_field_has_its_message(field: str, value: Any, message: str) -> None:
    errors = errors_for(**{field: value})
    assert list(errors) == [field]
    assert message in errors[field]


def test_all_errors_come_at_once() -> None:
    with pytest.raises(BrickInvalid) as raised:
        validate_brick({})
    assert set(raised.value.errors) == {"title", "category", "summary", "body"}


def test_partial_only_checks_what_is_given() -> None:
    assert validate_brick({"title": "Nouveau titre"}, partial=True).title == "Nouveau titre"


@pytest.mark.parametrize(
    ("given", "expected"),
    [("Méthode", "methode"), ("Method", "methode"), ("ANALYSIS", "analyse"), ("x", None)],
)
def test_category_labels_in_french_and_english(given: str, expected: str | None) -> None:
    assert parse_category(given) == expected


def test_files() -> None:
    assert check_file("plan.pdf", b"%PDF-1.7 ...") == "application/pdf"
    assert check_file("notes.md", "# Notes é".encode()) == "text/markdown"
    for name, content, message in [
        ("virus.exe", b"MZ", "not accepted"),
        ("faux.pdf", b"<html>", "not really"),
        ("gros.txt", b"x" * (MAX_FILE_BYTES + 1), "too large"),
        ("vide.txt", b"", "empty"),
        ("binaire.txt", b"\xff\xfe\x00", "UTF-8"),
    ]:
        with pytest.raises(BrickInvalid) as raised:
            check_file(name, content)
        assert message in raised.value.errors["files"]
