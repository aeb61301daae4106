import pytest

from node import i18n


@pytest.mark.parametrize(
    ("member", "header", "default", "expected"),
    [
        ("en", "fr", "fr", "en"),
        (None, "en-GB,en;q=0.9,fr;q=0.8", "fr", "en"),
        (None, "nl-BE, fr;q=0.5", "fr", "fr"),
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


def test_every_french_entry_is_translated() -> None:
    from importlib import resources

    from babel.messages.pofile import read_po

    path = resources.files("node") / "locale" / "fr" / "LC_MESSAGES" / "archipel.po"
    with path.open("rb") as po:
        catalog = read_po(po)
    missing = [m.id for m in catalog if m.id and not m.string]
    assert missing == []


def test_every_message_of_the_code_and_pages_has_a_french_translation() -> None:
    """Extract as `pybabel extract -F babel.cfg` would, and compare with the catalogue."""
    from importlib import resources
    from pathlib import Path

    from babel.messages.extract import extract_from_dir
    from babel.messages.pofile import read_po

    root = Path(__file__).resolve().parent.parent
    method_map = [("node/**.py", "python"), ("node/web/templates/**.html", "jinja2")]
    options = {"node/web/templates/**.html": {"extensions": "jinja2.ext.i18n"}}
    found: set[str] = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
        str(root), method_map, options_map=options
    ):
        found.add(message if isinstance(message, str) else message[0])
    path = resources.files("node") / "locale" / "fr" / "LC_MESSAGES" / "archipel.po"
    with path.open("rb") as po:
        catalog = read_po(po)
    missing = sorted(m for m in found if m and (m not in catalog or not catalog[m].string))
    assert len(found) > 100
    assert missing == []
