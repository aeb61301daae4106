"""Errors of the members domain, each with a message a person can act on."""

__all__ = [
    "InvalidMemberInput",
    "InvalidTransition",
    "LastAdministrator",
    "LoginRefused",
    "LoginThrottled",
    "MemberError",
    "MemberNotFound",
    "NotAllowed",
    "TokenNotFound",
    "TokenRefused",
    "UsernameTaken",
]


class MemberError(Exception):
    """Base class."""


class MemberNotFound(MemberError):
    pass


class UsernameTaken(MemberError):
    pass


class InvalidMemberInput(MemberError):
    """``field`` names the input at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class NotAllowed(MemberError):
    """The acting member may not do this (not an administrator, not approved)."""


class LastAdministrator(MemberError):
    """The action would leave the chamber without an approved administrator."""


class InvalidTransition(MemberError):
    """The member is not in a state this action applies to (e.g. approving a suspended one)."""


class LoginRefused(MemberError):
    """The password was right but the account may not sign in: ``status`` says why
    (pending, refused, suspended) and ``reason`` is the administrators' explanation."""

    def __init__(self, status: str, reason: str = "") -> None:
        super().__init__(f"this account is {status}" + (f": {reason}" if reason else ""))
        self.status = status
        self.reason = reason


class LoginThrottled(MemberError):
    """Too many failed sign-ins: try again in ``retry_after`` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed sign-ins: try again in {retry_after} seconds")
        self.retry_after = retry_after


class TokenNotFound(MemberError):
    """No token of that name to revoke (unknown, or already revoked)."""


class TokenRefused(MemberError):
    """A bearer token that does not authenticate: the message says why (unknown, revoked,
    expired, or its member not approved)."""
