"""What a refused member form says next to each field, in the page's language (the rules
in ``node.members`` name the field; the sentence a person reads is chosen here)."""

from __future__ import annotations

from node import i18n
from node.members.accounts import MAX_BIO_LENGTH
from node.members.errors import InvalidMemberInput, MemberError, UsernameTaken
from node.members.passwords import MIN_PASSWORD_LENGTH
from node.web.flash import N_

__all__ = ["REGISTRATION_FIELDS", "password_error", "profile_error", "registration_error"]

#: Fields of the registration form that show their own error.
REGISTRATION_FIELDS = (
    "username",
    "display_name",
    "email",
    "password",
    "password_confirm",
    "charter",
)

_MESSAGES = {
    "username": N_(
        "Choose another username: lowercase letters, digits or underscores (at most 30),"
        " not already taken."
    ),
    "display_name": N_("Give a name of 1 to 100 characters."),
    "password": N_("Choose a password of at least %(count)d characters."),
    "bio": N_("Keep it to %(count)d characters at most."),
    "avatar_url": N_("Give the https:// address of an image, or leave it empty."),
    "email": N_("Give one email address, such as marie@example.org, or leave it empty."),
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


def profile_error(exc: InvalidMemberInput) -> tuple[str, str]:
    """(field, message) for a refused profile."""
    if exc.field in ("display_name", "bio", "avatar_url"):
        count = MAX_BIO_LENGTH if exc.field == "bio" else MIN_PASSWORD_LENGTH
        return exc.field, i18n.gettext(_MESSAGES[exc.field]) % {"count": count}
    return exc.field, exc.message


def password_error(exc: InvalidMemberInput) -> tuple[str, str]:
    """(field, message) for a refused change of password."""
    if exc.message == i18n.gettext("The passwords do not match."):
        return "new_password_confirm", exc.message
    if exc.field == "current_password":
        return exc.field, i18n.gettext(N_("The current password is not right."))
    if exc.field == "new_password":
        message = i18n.gettext(_MESSAGES["password"]) % {"count": MIN_PASSWORD_LENGTH}
        return exc.field, message
    return exc.field, exc.message
