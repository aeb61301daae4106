import pytest
from starlette.requests import Request

from node.web.negotiation import parse_accept, wants_activity_json


def request_with(accept: str | None) -> Request:
    headers = [] if accept is None else [(b"accept", accept.encode())]
    return Request({"type": "http", "method": "GET", "path": "/", "headers": headers})


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("application/activity+json", True),
        ('application/ld+json; profile="https://www.w3.org/ns/activitystreams"', True),
        ("application/ld+json", True),
        ('application/ld+json; profile="https://example.org/other"', False),
        ("application/json", True),
        ("text/html", False),
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", False),
        ("*/*", False),
        (None, False),
        ("", False),
        ("application/activity+json;q=0", False),
        ("text/html;q=0.5, application/activity+json", True),
        ("text/html, application/activity+json;q=0.5", False),
        ("application/json, text/html", False),
        ("garbage;;;q=abc,,,", False),
    ],
)
def test_wants_activity_json(accept: str | None, expected: bool) -> None:
    assert wants_activity_json(request_with(accept)) is expected


def test_parse_accept_bounds_the_number_of_entries() -> None:
    assert len(parse_accept(",".join(["text/html"] * 1000))) == 32
