"""The wire codec against upstream's real frames, malformed input, limits and random data."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cores.beehive import Message, MessageHeader, MessageRoute
from cores.wire import CodecError, Limits, decode, encode, encode_bytes
from tests.captures import capture_records

RECORDS = list(capture_records())
RAW = [(where, rec) for where, rec in RECORDS if "raw" in rec and rec["raw"] != "REDACTED"]


def test_captures_are_present() -> None:
    assert len(RECORDS) >= 300
    assert len(RAW) >= 100


@pytest.mark.parametrize("where,record", RAW, ids=[w for w, _ in RAW])
def test_raw_frames_reencode_byte_for_byte(where: str, record: dict[str, Any]) -> None:
    message = decode(record["raw"])
    assert encode(message) == record["raw"]
    assert len(encode_bytes(message)) == record["size"]


def test_every_captured_frame_decodes_and_round_trips() -> None:
    for where, record in RECORDS:
        frame = record["frame"]
        message = decode(json.dumps(frame))
        again = json.loads(encode(message))
        # Go drops empty route fields and unset header fields; the captured frames never carry them.
        assert again == frame, where


def test_zero_value_frame_from_sigterm() -> None:
    # upstream edgecore sends this on SIGTERM (shutdown.jsonl)
    message = decode('{"header":{"msg_id":"","timestamp":0},"route":{},"content":null}\n')
    assert message == Message(MessageHeader(), MessageRoute(), None)
    assert encode(message) == '{"header":{"msg_id":"","timestamp":0},"route":{},"content":null}\n'


def test_sync_is_never_on_the_wire() -> None:
    message = Message.new(source="a", group="b", operation="insert", resource="default/pod/x")
    message = message.with_header(sync=True)
    assert "sync" not in encode(message)
    assert decode('{"header":{"msg_id":"x","sync":true},"route":{},"content":1}').header.sync is True


def test_messages_are_frozen() -> None:
    import dataclasses

    import pytest

    message = Message.new(source="a", group="b", operation="insert", resource="default/pod/x")
    with pytest.raises(dataclasses.FrozenInstanceError):
        message.route.resource = "node/n/default/pod/x"  # type: ignore[misc]
    moved = message.with_resource("node/n/default/pod/x")
    assert (moved.msg_id, moved.route.resource, message.route.resource) == (message.msg_id, "node/n/default/pod/x", "default/pod/x")


def test_go_html_escaping() -> None:
    message = Message.new(source="s", group="g", operation="o", resource="r", content="a<b>&c\u2028")
    text = encode(message)
    assert '"a\\u003cb\\u003e\\u0026c\\u2028"' in text
    assert decode(text).content == "a<b>&c\u2028"


def test_bytes_content_is_base64_as_go() -> None:
    message = Message.new(source="s", group="g", operation="o", resource="r", content=b"\x00\x01")
    assert decode(encode(message)).content == "AAE="


@pytest.mark.parametrize(
    "frame,fragment",
    [
        ("", "not JSON"),
        ("{", "not JSON"),
        ("[]", "JSON object, not an array"),
        ('"x"', "not a string"),
        ('{"header":[]}', "header must be an object"),
        ('{"header":{"msg_id":5}}', "header.msg_id must be a string"),
        ('{"header":{"timestamp":"5"}}', "header.timestamp must be an integer"),
        ('{"header":{"timestamp":1.5}}', "header.timestamp must be an integer"),
        ('{"header":{"timestamp":true}}', "header.timestamp must be an integer"),
        ('{"header":{"timestamp":99999999999999999999}}', "64-bit"),
        ('{"header":{"sync":"yes"}}', "header.sync must be true or false"),
        ('{"route":{"resource":7}}', "route.resource must be a string"),
        ('{"route":"x"}', "route must be an object"),
        ('{"content":NaN}', "NaN is not valid JSON"),
        ('{"content":Infinity}', "Infinity is not valid JSON"),
        (b"\xff\xfe", "not valid UTF-8"),
    ],
)
def test_malformed_frames_raise_codec_error(frame: str | bytes, fragment: str) -> None:
    with pytest.raises(CodecError) as caught:
        decode(frame)
    assert fragment in str(caught.value)


def test_size_limit() -> None:
    frame = json.dumps({"header": {}, "route": {}, "content": "x" * 2000})
    assert decode(frame, Limits(max_frame_bytes=4096)).content == "x" * 2000
    with pytest.raises(CodecError, match="exceeds the limit of 1000 bytes"):
        decode(frame, Limits(max_frame_bytes=1000))
    with pytest.raises(CodecError, match="exceeds"):
        decode(frame.encode(), Limits(max_frame_bytes=1000))
    # multi-byte text is measured in UTF-8 bytes, as the peer counted it
    wide = json.dumps({"content": "é" * 600}, ensure_ascii=False)
    with pytest.raises(CodecError, match="exceeds"):
        decode(wide, Limits(max_frame_bytes=1000))


def test_default_limit_is_8_mib() -> None:
    with pytest.raises(CodecError, match="8388608"):
        decode(b"{" + b" " * (8 * 1024 * 1024) + b"}")


def test_depth_limit() -> None:
    deep = '{"content":' + "[" * 50 + "]" * 50 + "}"
    assert decode(deep, Limits(max_depth=60)).content is not None
    with pytest.raises(CodecError, match="deeper than 20"):
        decode(deep, Limits(max_depth=20))
    with pytest.raises(CodecError, match="deeper"):
        decode('{"content":' + "[" * 100000 + "]" * 100000 + "}")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)

messages = st.builds(
    Message,
    st.builds(
        MessageHeader,
        msg_id=st.uuids().map(str),
        parent_msg_id=st.one_of(st.just(""), st.uuids().map(str)),
        timestamp=st.integers(0, 2**63 - 1),
        resource_version=st.one_of(st.just(""), st.integers(1, 10**9).map(str)),
        type=st.one_of(st.just(""), st.text(min_size=1, max_size=5)),
    ),
    st.builds(MessageRoute, source=st.text(), destination=st.text(), group=st.text(), operation=st.text(), resource=st.text()),
    json_values,
)


@settings(max_examples=300, deadline=None)
@given(messages)
def test_round_trip(message: Message) -> None:
    assert decode(encode(message)) == message
    assert decode(encode_bytes(message)) == message or _has_surrogates(message)


def _has_surrogates(message: Message) -> bool:
    return any(0xD800 <= ord(c) <= 0xDFFF for c in encode(message))


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=512))
def test_random_bytes_never_crash(data: bytes) -> None:
    try:
        decode(data)
    except CodecError:
        pass


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=512))
def test_random_text_never_crashes(text: str) -> None:
    try:
        decode(text)
    except CodecError:
        pass


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_any_json_document_either_decodes_or_raises_codec_error(value: Any) -> None:
    try:
        decode(json.dumps({"header": value, "route": value, "content": value}))
    except CodecError:
        pass
