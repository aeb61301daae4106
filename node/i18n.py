"""Translations: gettext catalogues (``node/locale/<lang>/LC_MESSAGES/archipel.po``).

English is the source language: every msgid is the English text a person reads, so English
needs no catalogue (``translations("en")`` returns the msgids). French and Dutch have one
each, compiled in memory from the ``.po`` file (no ``.mo`` is committed or built);
tests/test_i18n.py fails when a message of the code or the pages lacks either translation.

The language of a request (``node.web.app.LanguageMiddleware``): ``?lang=`` (kept in the
``archipel_lang`` cookie), then that cookie, then the member's setting, then the best
``Accept-Language`` entry, then the chamber's ``language``.
"""

from __future__ import annotations

import gettext as _gettext
import io
from contextvars import ContextVar
from datetime import date, datetime
from functools import cache
from importlib import resources

from babel.dates import format_date as babel_format_date
from babel.dates import format_time as babel_format_time
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

__all__ = [
    "LANGUAGE_NAMES",
    "SOURCE_LANGUAGE",
    "SUPPORTED_LANGUAGES",
    "current_language",
    "format_day",
    "format_moment",
    "gettext",
    "ngettext",
    "negotiate_language",
    "translations",
    "use_language",
]

SUPPORTED_LANGUAGES = ("fr", "nl", "en")
#: Each language's name in itself, for the language switch.
LANGUAGE_NAMES = {"fr": "Français", "nl": "Nederlands", "en": "English"}
SOURCE_LANGUAGE = "en"
_current: ContextVar[str] = ContextVar("archipel_language", default="fr")


@cache
def translations(language: str) -> _gettext.NullTranslations:
    """Catalogue for a language, compiled in memory from its ``.po`` file."""
    if language == SOURCE_LANGUAGE:
        return _gettext.NullTranslations()
    po_path = resources.files("node") / "locale" / language / "LC_MESSAGES" / "archipel.po"
    if not po_path.is_file():
        return _gettext.NullTranslations()
    with po_path.open("rb") as po_file:
        catalog = read_po(po_file, locale=language)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return Translations(fp=buffer)


def use_language(language: str) -> None:
    _current.set(language if language in SUPPORTED_LANGUAGES else SUPPORTED_LANGUAGES[0])


def current_language() -> str:
    return _current.get()


def gettext(message: str) -> str:
    return translations(_current.get()).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return translations(_current.get()).ngettext(singular, plural, n)


def negotiate_language(
    member_language: str | None,
    accept_language: str | None,
    default: str,
    *,
    chosen: str | None = None,
) -> str:
    """The language picked on the page (``chosen``: ``?lang=`` or its cookie), then the
    member's setting, then the best supported ``Accept-Language`` entry, then the default."""
    if chosen in SUPPORTED_LANGUAGES:
        return chosen  # type: ignore[return-value]
    if member_language in SUPPORTED_LANGUAGES:
        return member_language  # type: ignore[return-value]
    best: tuple[float, str] | None = None
    for part in (accept_language or "").split(",")[:20]:
        pieces = part.strip().split(";")
        tag = pieces[0].strip().lower()
        quality = 1.0
        for param in pieces[1:]:
            key, _, value = param.strip().partition("=")
            if key == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        primary = tag.split("-")[0]
        if primary in SUPPORTED_LANGUAGES and quality > 0 and (best is None or quality > best[0]):
            best = (quality, primary)
    if best is not None:
        return best[1]
    return default if default in SUPPORTED_LANGUAGES else SUPPORTED_LANGUAGES[0]


def format_day(value: date | datetime | str | None) -> str:
    """The one way a page shows a day: ``3 juin 2027``, ``3 juni 2027``, ``June 3, 2027``
    (an ISO string is read first; None shows nothing)."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return babel_format_date(value, format="long", locale=current_language())


def format_moment(value: datetime | str | None) -> str:
    """The one way a page shows a moment (UTC, as stored): the day, then the time of day
    (``3 juin 2027, 14:05``)."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    time_of_day = babel_format_time(value, format="short", locale=current_language())
    return f"{format_day(value)}, {time_of_day}"
