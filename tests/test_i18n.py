from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog

from node import i18n

#: The languages with a catalogue; English is the source language (its msgids).
TRANSLATED = [language for language in i18n.SUPPORTED_LANGUAGES if language != "en"]


@pytest.mark.parametrize(
    ("member", "header", "default", "expected"),
    [
        ("en", "fr", "fr", "en"),
        (None, "en-GB,en;q=0.9,fr;q=0.8", "fr", "en"),
        (None, "nl-BE, fr;q=0.5", "fr", "nl"),
        (None, "de, nl;q=0.4, en;q=0.3", "fr", "nl"),
        (None, "de", "fr", "fr"),
        (None, None, "en", "en"),
        (None, "en;q=0, fr;q=0.1", "en", "fr"),
        (None, "en;q=bad", "fr", "fr"),
        ("xx", None, "zz", "fr"),
    ],
)
def test_language_negotiation(
    member: str | None, header: str | None, default: str, expected: str
) -> None:
    assert i18n.negotiate_language(member, header, default) == expected


def test_french_catalogue_is_loaded_from_the_po_file() -> None:
    i18n.use_language("fr")
    assert i18n.gettext("Follow this chamber") == "Suivre cette chambre"
    i18n.use_language("en")
    assert i18n.gettext("Follow this chamber") == "Follow this chamber"


def test_the_language_picked_on_the_page_comes_first() -> None:
    assert i18n.negotiate_language("fr", "en", "fr", chosen="nl") == "nl"
    assert i18n.negotiate_language("fr", "en", "nl", chosen="xx") == "fr"
    assert i18n.negotiate_language(None, "de", "nl", chosen=None) == "nl"


def test_dutch_catalogue_is_loaded_from_the_po_file() -> None:
    i18n.use_language("nl")
    assert i18n.gettext("Follow this chamber") == "Deze kamer volgen"
    assert i18n.ngettext("%(num)d member", "%(num)d members", 2) == "%(num)d leden"
    i18n.use_language("fr")


@pytest.mark.parametrize(
    ("language", "day", "moment"),
    [
        ("fr", "3 juin 2027", "3 juin 2027, 14:05"),
        ("nl", "3 juni 2027", "3 juni 2027, 14:05"),
        ("en", "June 3, 2027", "June 3, 2027, 2:05"),
    ],
)
def test_one_way_to_show_a_day_and_a_moment(language: str, day: str, moment: str) -> None:
    from datetime import UTC, date, datetime

    i18n.use_language(language)
    try:
        assert i18n.format_day(date(2027, 6, 3)) == day
        assert i18n.format_day("2027-06-03T14:05:00Z") == day
        shown = i18n.format_moment(datetime(2027, 6, 3, 14, 5, tzinfo=UTC))
        assert shown.startswith(moment)  # English adds "PM" (its space varies with CLDR)
    finally:
        i18n.use_language("fr")


@cache
def _catalogue(language: str) -> Catalog:
    from babel.messages.pofile import read_po

    path = resources.files("node") / "locale" / language / "LC_MESSAGES" / "archipel.po"
    with path.open("rb") as po:
        return read_po(po, locale=language)


@cache
def _extracted() -> frozenset[str | tuple[str, ...]]:
    """Every message of the code and the pages, as `pybabel extract -F babel.cfg` finds it."""
    from babel.messages.extract import extract_from_dir

    root = Path(__file__).resolve().parent.parent
    method_map = [("node/**.py", "python"), ("node/web/templates/**.html", "jinja2")]
    options = {"node/web/templates/**.html": {"extensions": "jinja2.ext.i18n"}}
    return frozenset(
        message
        for _file, _line, message, _comments, _context in extract_from_dir(
            str(root), method_map, options_map=options
        )
    )


def test_english_is_the_source_language_without_a_catalogue() -> None:
    assert TRANSLATED == ["fr", "nl"]
    assert not (resources.files("node") / "locale" / "en").is_dir()
    assert i18n.translations("en").gettext("Clearing house") == "Clearing house"


@pytest.mark.parametrize("language", TRANSLATED)
def test_every_entry_of_the_catalogue_is_translated(language: str) -> None:
    catalog = _catalogue(language)
    missing = [m.id for m in catalog if m.id and not all(_strings(m.string))]
    assert missing == []
    problems = [(m.id, errors) for m, errors in catalog.check()]
    assert problems == []  # placeholders (python-format) agree with the msgid


def _strings(string: str | tuple[str, ...]) -> tuple[str, ...]:
    return string if isinstance(string, tuple) else (string,)


@pytest.mark.parametrize("language", TRANSLATED)
def test_every_message_of_the_code_and_pages_is_translated(language: str) -> None:
    """Extract as `pybabel extract -F babel.cfg` would, and compare with the catalogue."""
    found = _extracted()
    catalog = _catalogue(language)
    missing = sorted(
        str(message)
        for message in found
        if message
        and (
            (key := message[0] if isinstance(message, tuple) else message) not in catalog
            or not all(_strings(catalog[key].string))
        )
    )
    assert len(found) > 100
    assert missing == []
