"""The subset of RFC 8941 Structured Field Values that HTTP Message Signatures need.

Parses and serialises Dictionaries whose members are Items or Inner Lists, with
parameters, and every bare item type (Integer, Decimal, String, Token, Byte Sequence,
Boolean). Pure: strings in, values out, ``StructuredFieldError`` on anything else.

Written here rather than taken from ``http-sfv`` because RFC 9421 needs about 200 lines
of it, the package's last release is from January 2024, and ``signatures.py`` must stay a
pure module with no dependency beyond ``cryptography``.
"""

from __future__ import annotations

import base64
import binascii
import string
from dataclasses import dataclass, field
from decimal import Decimal

__all__ = [
    "BareItem",
    "Dictionary",
    "InnerList",
    "Item",
    "Parameters",
    "StructuredFieldError",
    "Token",
    "parse_dictionary",
    "serialize_bare_item",
    "serialize_inner_list",
    "serialize_item",
    "serialize_parameters",
]


class StructuredFieldError(ValueError):
    """The text is not a valid structured field value (RFC 8941)."""


class Token(str):
    """An sf-token (``sha-256``, ``?``-less bare words), as opposed to an sf-string."""

    __slots__ = ()


BareItem = int | Decimal | str | Token | bytes | bool
Parameters = dict[str, BareItem]


@dataclass(frozen=True)
class Item:
    """A bare item with its parameters."""

    value: BareItem
    params: Parameters = field(default_factory=dict)


@dataclass(frozen=True)
class InnerList:
    """A parenthesised list of items, with parameters of its own."""

    items: tuple[Item, ...]
    params: Parameters = field(default_factory=dict)


Dictionary = dict[str, Item | InnerList]

_LCALPHA = frozenset(string.ascii_lowercase)
_KEY_FIRST = _LCALPHA | {"*"}
_KEY_CHARS = _LCALPHA | frozenset(string.digits) | frozenset("_-.*")
_TCHAR = frozenset(string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~")
_TOKEN_CHARS = _TCHAR | frozenset(":/")
_BASE64_CHARS = frozenset(string.ascii_letters + string.digits + "+/=")


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def fail(self, what: str) -> StructuredFieldError:
        return StructuredFieldError(f"{what} at position {self.pos} of {self.text!r}")

    def skip_sp(self) -> None:
        while self.peek() == " ":
            self.pos += 1

    def skip_ows(self) -> None:
        while self.peek() in (" ", "\t"):
            self.pos += 1

    def dictionary(self) -> Dictionary:
        members: Dictionary = {}
        while self.pos < len(self.text):
            key = self.key()
            if self.peek() == "=":
                self.pos += 1
                members[key] = self.item_or_inner_list()
            else:
                members[key] = Item(True, self.parameters())
            self.skip_ows()
            if self.pos >= len(self.text):
                return members
            if self.peek() != ",":
                raise self.fail("expected ','")
            self.pos += 1
            self.skip_ows()
            if self.pos >= len(self.text):
                raise self.fail("trailing ','")
        return members

    def item_or_inner_list(self) -> Item | InnerList:
        return self.inner_list() if self.peek() == "(" else self.item()

    def inner_list(self) -> InnerList:
        self.pos += 1  # "("
        items: list[Item] = []
        while self.pos < len(self.text):
            self.skip_sp()
            if self.peek() == ")":
                self.pos += 1
                return InnerList(tuple(items), self.parameters())
            items.append(self.item())
            if self.peek() not in (" ", ")"):
                raise self.fail("expected ' ' or ')' in inner list")
        raise self.fail("unterminated inner list")

    def item(self) -> Item:
        value = self.bare_item()
        return Item(value, self.parameters())

    def parameters(self) -> Parameters:
        params: Parameters = {}
        while self.peek() == ";":
            self.pos += 1
            self.skip_sp()
            key = self.key()
            value: BareItem = True
            if self.peek() == "=":
                self.pos += 1
                value = self.bare_item()
            params[key] = value
        return params

    def key(self) -> str:
        if self.peek() not in _KEY_FIRST:
            raise self.fail("expected a key")
        start = self.pos
        while self.peek() and self.peek() in _KEY_CHARS:
            self.pos += 1
        return self.text[start : self.pos]

    def bare_item(self) -> BareItem:
        char = self.peek()
        if char == "-" or char.isdigit() and char.isascii():
            return self.number()
        if char == '"':
            return self.string()
        if char == "*" or char.isascii() and char.isalpha():
            return self.token()
        if char == ":":
            return self.byte_sequence()
        if char == "?":
            return self.boolean()
        raise self.fail("expected an item")

    def number(self) -> int | Decimal:
        start = self.pos
        if self.peek() == "-":
            self.pos += 1
        digits = self.pos  # RFC 8941 §4.2.4 counts lengths without the sign
        if not (self.peek().isascii() and self.peek().isdigit()):
            raise self.fail("expected a digit")
        is_decimal = False
        while self.peek():
            char = self.peek()
            if char.isascii() and char.isdigit():
                self.pos += 1
            elif char == "." and not is_decimal:
                if self.pos - digits > 12:
                    raise self.fail("decimal too long")
                is_decimal = True
                self.pos += 1
            else:
                break
            if self.pos - digits > (16 if is_decimal else 15):
                raise self.fail("number too long")
        text = self.text[start : self.pos]
        if not is_decimal:
            return int(text)
        fraction = text.split(".", 1)[1]
        if not fraction or len(fraction) > 3:
            raise self.fail("bad decimal fraction")
        return Decimal(text)

    def string(self) -> str:
        self.pos += 1  # opening quote
        out: list[str] = []
        while self.pos < len(self.text):
            char = self.text[self.pos]
            self.pos += 1
            if char == "\\":
                escaped = self.peek()
                if escaped not in ('"', "\\"):
                    raise self.fail("bad escape in string")
                out.append(escaped)
                self.pos += 1
            elif char == '"':
                return "".join(out)
            elif not (" " <= char <= "~"):
                raise self.fail("bad character in string")
            else:
                out.append(char)
        raise self.fail("unterminated string")

    def token(self) -> Token:
        start = self.pos
        self.pos += 1
        while self.peek() and self.peek() in _TOKEN_CHARS:
            self.pos += 1
        return Token(self.text[start : self.pos])

    def byte_sequence(self) -> bytes:
        self.pos += 1  # opening colon
        end = self.text.find(":", self.pos)
        if end < 0:
            raise self.fail("unterminated byte sequence")
        encoded = self.text[self.pos : end]
        if any(char not in _BASE64_CHARS for char in encoded):
            raise self.fail("bad character in byte sequence")
        self.pos = end + 1
        try:
            return base64.b64decode(encoded, validate=True)
        except binascii.Error as exc:
            raise self.fail(f"bad base64 in byte sequence ({exc})") from None

    def boolean(self) -> bool:
        self.pos += 1
        char = self.peek()
        if char not in ("0", "1"):
            raise self.fail("expected ?0 or ?1")
        self.pos += 1
        return char == "1"


def parse_dictionary(text: str) -> Dictionary:
    """Parse an sf-dictionary; several field lines must already be joined with ``", "``."""
    parser = _Parser(text.strip(" \t"))
    return parser.dictionary()


def serialize_bare_item(value: BareItem) -> str:
    """Serialise one bare item in its canonical form."""
    if isinstance(value, bool):
        return "?1" if value else "?0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        text = f"{value.quantize(Decimal('0.001')).normalize():f}"
        return text if "." in text else f"{text}.0"
    if isinstance(value, Token):
        return str(value)
    if isinstance(value, str):
        if any(not (" " <= char <= "~") for char in value):
            raise StructuredFieldError(f"string {value!r} has characters outside ASCII")
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}"'
    return ":" + base64.b64encode(value).decode("ascii") + ":"


def serialize_parameters(params: Parameters) -> str:
    """Serialise ``;key=value`` parameters (a ``True`` value is written bare)."""
    parts = []
    for key, value in params.items():
        parts.append(f";{key}" if value is True else f";{key}={serialize_bare_item(value)}")
    return "".join(parts)


def serialize_item(item: Item) -> str:
    """Serialise an item with its parameters."""
    return serialize_bare_item(item.value) + serialize_parameters(item.params)


def serialize_inner_list(inner: InnerList) -> str:
    """Serialise an inner list with its parameters."""
    members = " ".join(serialize_item(item) for item in inner.items)
    return f"({members}){serialize_parameters(inner.params)}"
