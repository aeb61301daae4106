"""Translations: gettext catalogues (``node/locale/<lang>/LC_MESSAGES/archipel.po``).

Source strings are English; the language of a request is chosen by the member's setting,
then ``Accept-Language``, then the chamber's default (French).
"""

from __future__ import annotations

import gettext as _gettext
import io
from contextvars import ContextVar
from functools import cache
from importlib import resources

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

__all__ = [
    "SUPPORTED_LANGUAGES",
    "gettext",
    "ngettext",
    "negotiate_language",
    "translations",
    "use_language",
]

SUPPORTED_LANGUAGES = ("fr", "en")
_current: ContextVar[str] = ContextVar("archipel_language", default="fr")


@cache
def translations(language: str) -> _gettext.NullTranslations:
    """Catalogue for a language, compiled in memory from its ``.po`` file."""
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
    member_language: str | None, accept_language: str | None, default: str
) -> str:
    """Member setting, then the best supported ``Accept-Language`` entry, then the default."""
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
