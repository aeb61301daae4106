"""What a refused answer to an exchange (contest, amend, accept, ...) says, in the page's
language: next to its field when one is at fault, above the forms otherwise. The rules are
in ``node.clearing``; the sentence a person reads is chosen here."""

from __future__ import annotations

from node import i18n
from node.clearing.exchanges.house import MAX_DESCRIPTION, MAX_MINUTES, InvalidExchange, NotAParty
from node.clearing.exchanges.states import InvalidTransition
from node.clearing.ledger.rules import CeilingBreach, FloorBreach
from node.clearing.units import ClearingError, DurationError, format_minutes
from node.web.flash import N_
from node.web.labels import exchange_state_label

__all__ = ["ANSWER_FIELDS", "answer_error"]

#: The fields of the answer forms, with how much of each is read (one character past the
#: most allowed, so that the rule refuses a text too long instead of it being cut).
ANSWER_FIELDS = {"comment": MAX_DESCRIPTION + 1, "duration": 40, "description": MAX_DESCRIPTION + 1}

_FIELD_OF = {"comment": "comment", "minutes": "duration", "description": "description"}

_MESSAGES = {
    "comment": N_(
        "Say what is wrong, so that the other member can amend it (at most %(count)d characters)."
    ),
    "duration": N_("Give a duration such as 1 h 30, 45 min or 2 h (at most %(most)s)."),
    "description": N_("Say in a few words what was done (at most %(count)d characters)."),
}


def _field_message(field: str) -> str:
    return i18n.gettext(_MESSAGES[field]) % {
        "count": MAX_DESCRIPTION,
        "most": format_minutes(MAX_MINUTES),
    }


def answer_error(exc: ClearingError, fallback: str) -> tuple[str, str]:
    """(field, message) for a refused answer; the field is ``form`` when no field is at
    fault (``fallback``: the error's own message, for kinds without a sentence here)."""
    if isinstance(exc, DurationError):
        return "duration", _field_message("duration")
    if isinstance(exc, InvalidExchange) and exc.field in _FIELD_OF:
        field = _FIELD_OF[exc.field]
        return field, _field_message(field)
    if isinstance(exc, InvalidTransition):
        return "form", i18n.gettext(
            "This answer is no longer possible: the exchange is now %(state)s."
        ) % {"state": exchange_state_label(exc.state.value)}
    if isinstance(exc, NotAParty):
        return "form", i18n.gettext(
            "Only the provider and the beneficiary of an exchange can answer it."
        )
    if isinstance(exc, FloorBreach):
        return "form", i18n.gettext(
            "Not validated: the beneficiary's balance would go below their floor of"
            " %(limit)s by %(excess)s."
        ) % {"limit": format_minutes(exc.limit), "excess": format_minutes(exc.excess)}
    if isinstance(exc, CeilingBreach):
        return "form", i18n.gettext(
            "Not validated: the provider's balance would go above their ceiling of"
            " %(limit)s by %(excess)s."
        ) % {"limit": format_minutes(exc.limit), "excess": format_minutes(exc.excess)}
    return "form", fallback
