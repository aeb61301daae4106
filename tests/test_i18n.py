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
