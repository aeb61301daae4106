"""The RFC 8941 structured-field subset that RFC 9421 signatures are parsed with."""

from __future__ import annotations

import pytest

from node.activitypub import _structured_fields as sf


def test_structured_fields__parse_and_serialize_round_trip() -> None:
    text = 'a=("x";p=1 "y\\"z");created=1;keyid="k", b=:AAEC:, c, d=?0;e=tok/en, f=-1.5'
    parsed = sf.parse_dictionary(text)
    a = parsed["a"]
    assert isinstance(a, sf.InnerList)
    assert [item.value for item in a.items] == ["x", 'y"z']
    assert a.items[0].params == {"p": 1}
    assert parsed["b"] == sf.Item(b"\x00\x01\x02")
    assert parsed["c"] == sf.Item(True)
    assert parsed["d"] == sf.Item(False, {"e": sf.Token("tok/en")})
    assert sf.serialize_inner_list(a) == '("x";p=1 "y\\"z");created=1;keyid="k"'
    assert sf.serialize_item(parsed["f"]) == "-1.5"  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "text",
    [
        "a=1234567890123456",
        "a=1234567890123.5",
        "a=1.2345",
        "a=1.",
        "a=1,",
        "A=1",
        "a=(1",
        'a="unterminated',
        "a=:AA",
        "a=?2",
        "a=1 b=2",
        'a="\\x"',
        "a=@",
    ],
)
def test_structured_fields__rejects(text: str) -> None:
    with pytest.raises(sf.StructuredFieldError):
        sf.parse_dictionary(text)


def test_structured_fields__longest_numbers() -> None:
    assert sf.parse_dictionary("a=-123456789012345")["a"] == sf.Item(-123456789012345)
    parsed = sf.parse_dictionary("a=-123456789012.123")["a"]
    assert sf.serialize_item(parsed) == "-123456789012.123"  # type: ignore[arg-type]
