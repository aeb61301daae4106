"""One-time messages after an action ("Your brick is published."): kept in the session by
the handler that redirects, shown once by the next page (``base.html``)."""

from __future__ import annotations

from starlette.requests import Request

__all__ = ["flash", "pop_flashes"]

_KEY = "flashes"
#: A session cookie stays small: older messages give way to newer ones.
_MAX = 3


def flash(request: Request, message: str) -> None:
    """Show ``message`` (already in the page's language) on the next page rendered."""
    if "session" not in request.scope:
        return
    kept = [m for m in request.session.get(_KEY, []) if isinstance(m, str)]
    request.session[_KEY] = [*kept, message][-_MAX:]


def pop_flashes(request: Request) -> list[str]:
    """The waiting messages, forgotten as they are read."""
    if "session" not in request.scope or _KEY not in request.session:
        return []
    messages = request.session.pop(_KEY)
    return [m for m in messages if isinstance(m, str)] if isinstance(messages, list) else []
