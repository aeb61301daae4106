"""What a page shows for an internal code: one function per kind, in the request's language.

States, roles, statuses, actions and audit entries are stored as codes (``posted``,
``clearing.grant``); a page never shows the code itself but its label, English source text
translated by ``node.i18n`` (the templates reach these functions as globals of the same name,
``node.web.templating``). A code without a label shows a neutral word, never the code.
tests/web/test_page_languages.py fails when a page shows a code.
"""

from __future__ import annotations

from collections.abc import Mapping

from node import i18n

__all__ = [
    "LABELS",
    "audit_action_label",
    "audit_actor_label",
    "brick_field_label",
    "exchange_action_label",
    "exchange_event_label",
    "exchange_state_label",
    "ledger_kind_label",
    "member_role_label",
    "member_status_label",
    "clearing_override_label",
    "round_state_label",
    "settlement_role_label",
    "settlement_state_label",
    "reconciliation_status_label",
]


def N_(message: str) -> str:
    """Marks a message for extraction; translated when shown."""
    return message


EXCHANGE_STATES = {
    "proposed": N_("waiting for validation"),
    "contested": N_("contested"),
    "posted": N_("posted to the ledger"),
    "refused": N_("refused"),
    "withdrawn": N_("withdrawn"),
    "expired": N_("expired"),
    "settling": N_("being settled between the chambers"),
}
#: What the member does to an exchange (the buttons of the exchange page).
EXCHANGE_ACTIONS = {
    "accept": N_("Validate"),
    "contest": N_("Contest"),
    "refuse": N_("Refuse"),
    "amend": N_("Amend"),
    "withdraw": N_("Withdraw"),
}
#: A line of an exchange's history: what happened.
EXCHANGE_EVENTS = {
    "declare": N_("declared"),
    "accept": N_("validated"),
    "contest": N_("contested"),
    "amend": N_("amended"),
    "refuse": N_("refused"),
    "withdraw": N_("withdrawn"),
    "expire": N_("expired"),
    "prepare": N_("settlement prepared with the other chamber"),
    "commit": N_("settlement committed"),
    "abort": N_("settlement abandoned"),
}
LEDGER_KINDS = {
    "exchange": N_("exchange"),
    "demurrage": N_("demurrage"),
    "round": N_("clearing round"),
}
MEMBER_STATUSES = {
    "pending": N_("waiting for approval"),
    "approved": N_("approved"),
    "refused": N_("refused"),
    "suspended": N_("suspended"),
}
MEMBER_ROLES = {"member": N_("member"), "admin": N_("administrator")}
CLEARING_OVERRIDES = {"granted": N_("granted by hand"), "revoked": N_("withdrawn by hand")}
AUDIT_ACTIONS = {
    "member.approve": N_("registration approved"),
    "member.refuse": N_("registration refused"),
    "member.suspend": N_("member suspended"),
    "member.reinstate": N_("member reinstated"),
    "member.reset_link": N_("password reset link made"),
    "admin.promote": N_("made administrator"),
    "admin.demote": N_("removed from the administrators"),
    "clearing.grant": N_("clearing access granted"),
    "clearing.revoke": N_("clearing access withdrawn"),
    "clearing.rule": N_("clearing-access rule changed"),
    "clearing.limit": N_("balance limits changed"),
    "domain.block": N_("domain blocked"),
    "domain.unblock": N_("domain unblocked"),
    "remote.remove": N_("remote content removed"),
    "charter.edit": N_("charter changed"),
    "partner.add": N_("partner chamber added"),
    "partner.credit_line": N_("credit line changed"),
    "partner.mismatch": N_("reconciliation mismatch"),
    "partner.reconciled": N_("reconciliation resolved"),
}
ROUND_STATES = {
    "collecting": N_("collecting statements"),
    "proposed": N_("proposed"),
    "signed": N_("signed"),
    "committed": N_("committed"),
    "aborted": N_("aborted"),
}
SETTLEMENT_STATES = {
    "prepared": N_("in flight"),
    "committed": N_("committed"),
    "aborted": N_("aborted"),
}
SETTLEMENT_ROLES = {
    "preparer": N_("asked by this chamber"),
    "decider": N_("decided by this chamber"),
}
RECONCILIATION_STATUSES = {
    "never": N_("not compared yet"),
    "ok": N_("in agreement"),
    "mismatch": N_("mismatch"),
}
BRICK_FIELDS = {
    "title": N_("Title"),
    "category": N_("Category"),
    "summary": N_("Summary"),
    "body": N_("Text"),
    "tags": N_("Tags"),
    "links": N_("Links"),
    "files": N_("Files"),
    "authors": N_("Authors"),
}

#: Every kind, for the tests that check each code has a label.
LABELS: Mapping[str, Mapping[str, str]] = {
    "exchange_state": EXCHANGE_STATES,
    "exchange_action": EXCHANGE_ACTIONS,
    "exchange_event": EXCHANGE_EVENTS,
    "ledger_kind": LEDGER_KINDS,
    "member_status": MEMBER_STATUSES,
    "member_role": MEMBER_ROLES,
    "clearing_override": CLEARING_OVERRIDES,
    "audit_action": AUDIT_ACTIONS,
    "round_state": ROUND_STATES,
    "settlement_state": SETTLEMENT_STATES,
    "settlement_role": SETTLEMENT_ROLES,
    "reconciliation_status": RECONCILIATION_STATUSES,
    "brick_field": BRICK_FIELDS,
}


#: What a code without a label shows (a code added without its label), never the code.
OTHER = N_("other")


def _label(labels: Mapping[str, str], code: object) -> str:
    return i18n.gettext(labels.get(str(code), OTHER))


def exchange_state_label(code: object) -> str:
    return _label(EXCHANGE_STATES, code)


def exchange_action_label(code: object) -> str:
    return _label(EXCHANGE_ACTIONS, code)


def exchange_event_label(code: object) -> str:
    return _label(EXCHANGE_EVENTS, code)


def ledger_kind_label(code: object) -> str:
    return _label(LEDGER_KINDS, code)


def member_status_label(code: object) -> str:
    return _label(MEMBER_STATUSES, code)


def member_role_label(code: object) -> str:
    return _label(MEMBER_ROLES, code)


def clearing_override_label(code: object) -> str:
    """``granted``/``revoked`` by an administrator; None: the chamber's rule decides."""
    if code is None:
        return i18n.gettext("by the rule")
    return _label(CLEARING_OVERRIDES, code)


def audit_action_label(code: object) -> str:
    return _label(AUDIT_ACTIONS, code)


def audit_actor_label(by: str) -> str:
    """Who acted: a username, or the server's operator (``node.members.audit.OPERATOR``)."""
    return i18n.gettext("the server's operator") if by == "operator" else by


def brick_field_label(code: object) -> str:
    return _label(BRICK_FIELDS, code)


def round_state_label(code: object) -> str:
    return _label(ROUND_STATES, code)


def settlement_state_label(code: object) -> str:
    return _label(SETTLEMENT_STATES, code)


def settlement_role_label(code: object) -> str:
    return _label(SETTLEMENT_ROLES, code)


def reconciliation_status_label(code: object) -> str:
    return _label(RECONCILIATION_STATUSES, code)
