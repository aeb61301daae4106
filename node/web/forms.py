"""What a refused member form says next to each field, in the page's language (the rules
in ``node.members`` name the field; the sentence a person reads is chosen here)."""

from __future__ import annotations

from node import i18n
from node.members.errors import InvalidMemberInput, MemberError, UsernameTaken
from node.members.passwords import MIN_PASSWORD_LENGTH
from node.web.flash import N_

__all__ = ["REGISTRATION_FIELDS", "registration_error"]

#: Fields of the registration form that show their own error.
REGISTRATION_FIELDS = ("username", "display_name", "password", "password_confirm", "charter")

_MESSAGES = {
    "username": N_(
        "Choose another username: lowercase letters, digits or underscores (at most 30),"
        " not already taken."
    ),
    "display_name": N_("Give a name of 1 to 100 characters."),
    "password": N_("Choose a password of at least %(count)d characters."),
}


def registration_error(exc: MemberError) -> tuple[str, str]:
    """(field, message) for a refused registration."""
    if isinstance(exc, UsernameTaken):
        return "username", i18n.gettext(_MESSAGES["username"])
    if not isinstance(exc, InvalidMemberInput):
        return "", str(exc)
    if exc.field == "password" and exc.message == i18n.gettext("The passwords do not match."):
        return "password_confirm", exc.message
    if exc.field in _MESSAGES:
        message = i18n.gettext(_MESSAGES[exc.field]) % {"count": MIN_PASSWORD_LENGTH}
        return exc.field, message
    return exc.field, exc.message
