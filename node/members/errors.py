"""Errors of the members domain, each with a message a person can act on."""

__all__ = ["MemberError", "MemberNotFound", "UsernameTaken", "InvalidMemberInput"]


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
