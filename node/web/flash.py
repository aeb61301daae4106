"""One-time messages after an action ("Your brick is published."): kept in the session by
the handler that redirects, shown once by the next page (``base.html``), translated there
in the language of that page (the session keeps the English message id)."""

from __future__ import annotations

from starlette.requests import Request

from node import i18n

__all__ = ["N_", "flash", "pop_flashes"]

_KEY = "flashes"
#: A session cookie stays small: older messages give way to newer ones.
_MAX = 3


def N_(message: str) -> str:
    """Marks a message for extraction (``pybabel``); it is translated where it is shown."""
    return message


def flash(request: Request, message: str) -> None:
    """Show ``message`` (an English message id, marked with ``N_``) on the next page."""
    if "session" not in request.scope:
        return
    kept = [m for m in request.session.get(_KEY, []) if isinstance(m, str)]
    request.session[_KEY] = [*kept, message][-_MAX:]


def pop_flashes(request: Request) -> list[str]:
    """The waiting messages in the page's language, forgotten as they are read."""
    if "session" not in request.scope or _KEY not in request.session:
        return []
    messages = request.session.pop(_KEY)
    if not isinstance(messages, list):
        return []
    return [i18n.gettext(m) for m in messages if isinstance(m, str)]
