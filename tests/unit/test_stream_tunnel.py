"""The stream tunnel's frames and connect requests (cores/link/stream.py), and CRI log reading."""

from __future__ import annotations

import asyncio
import datetime
import json
from pathlib import Path

import pytest

from cores.edge.edged import logs
from cores.link import stream


def test_frames_are_upstreams_uvarint_layout() -> None:
    # Go's binary.PutUvarint: 300 is ac 02; type DATA is 3
    assert stream.encode_frame(300, stream.FrameType.DATA, b"\xff\xfe") == b"\xac\x02\x03\xff\xfe"
    frame = stream.decode_frame(b"\xac\x02\x03\xff\xfe")
    assert (frame.connect_id, frame.type, frame.data) == (300, 3, b"\xff\xfe")
    assert stream.decode_frame(stream.encode_frame(0, stream.FrameType.CLOSE_CONNECT, b"bye")).data == b"bye"


@pytest.mark.parametrize("payload", [b"", b"\x80", b"\x01", b"\xff" * 11, b"\xff" * 9 + b"\x7f\x03"])
def test_malformed_frames_are_refused(payload: bytes) -> None:
    with pytest.raises(stream.StreamProtocolError):
        stream.decode_frame(payload)


def test_oversized_frame_is_refused() -> None:
    with pytest.raises(stream.StreamProtocolError):
        stream.decode_frame(b"\x01\x03" + b"x" * (stream.MAX_FRAME_DATA + 1))


def test_connect_request_round_trip_in_upstreams_json() -> None:
    request = stream.ConnectRequest(7, stream.FrameType.EXEC_CONNECT, "POST", "/exec/default/web/app",
                                    "command=sh&input=1", {"Upgrade": ("SPDY/3.1",), "X-Stream-Protocol-Version": (
                                        "v4.channel.k8s.io", "v3.channel.k8s.io")}, raw_response=True, window=4096)
    document = json.loads(request.payload())
    # the fields upstream's EdgedExecConnection reads: MessID, url (Go's url.URL), header, method
    assert document["MessID"] == 7 and document["method"] == "POST"
    assert document["url"]["Path"] == "/exec/default/web/app" and document["url"]["RawQuery"] == "command=sh&input=1"
    assert document["url"]["Host"] == "127.0.0.1:10350" and document["url"]["Scheme"] == "http"
    assert document["header"]["X-Stream-Protocol-Version"] == ["v4.channel.k8s.io", "v3.channel.k8s.io"]
    parsed = stream.parse_connect(stream.decode_frame(request.frame()))
    assert parsed == request


def test_upstream_connect_without_our_fields() -> None:
    # what upstream's cloudcore sends for kubectl logs (EdgedLogsConnection: no method field)
    data = json.dumps({"MessID": 1, "url": {"Scheme": "http", "Host": "127.0.0.1:10350",
                                            "Path": "/containerLogs/default/web/app", "RawQuery": "follow=true"},
                       "header": {"Accept": ["*/*"]}}).encode()
    parsed = stream.parse_connect(stream.Frame(1, stream.FrameType.LOGS_CONNECT, data))
    assert (parsed.method, parsed.target, parsed.raw_response, parsed.window) == (
        "GET", "/containerLogs/default/web/app?follow=true", False, 0)


@pytest.mark.parametrize("url", [
    {"Path": "/containerLogs/../../etc/passwd"},
    {"Path": "relative"},
    {"Path": "/exec/a/b/c", "RawQuery": "x=\r\nHost: evil"},
    {"RawPath": "/x y", "Path": "/x y"},
    "not an object",
])
def test_hostile_connect_requests_are_refused(url: object) -> None:
    data = json.dumps({"MessID": 1, "url": url}).encode()
    with pytest.raises(stream.StreamProtocolError):
        stream.parse_connect(stream.Frame(1, stream.FrameType.LOGS_CONNECT, data))


def test_hostile_headers_and_methods_are_refused() -> None:
    for extra in ({"header": {"X": ["a\r\nb"]}}, {"header": {"Bad Name": ["v"]}}, {"method": "DELETE"},
                  {"window": -1}, {"header": {f"H{i}": ["v"] for i in range(100)}}):
        data = json.dumps({"MessID": 1, "url": {"Path": "/exec/a/b/c"}, **extra}).encode()
        with pytest.raises(stream.StreamProtocolError):
            stream.parse_connect(stream.Frame(1, stream.FrameType.EXEC_CONNECT, data))
    with pytest.raises(stream.StreamProtocolError):
        stream.parse_connect(stream.Frame(1, stream.FrameType.LOGS_CONNECT, b"[" * 100_000))


def test_window_credit_and_grants() -> None:
    credit = stream.SendCredit(100)
    assert credit.may_send() == 100
    credit.sent(100)
    assert credit.may_send() == 0
    credit.granted(stream.window_grant(stream.decode_frame(stream.window_frame(1, 60))))
    assert credit.may_send() == 60
    assert stream.SendCredit(0).may_send() == stream.CHUNK_BYTES  # an upstream peer: no window
    window = stream.ReceiveWindow(100)
    window.received(80)
    assert window.delivered(40) == 0 and window.delivered(20) == 60
    window.received(150)
    assert window.overflowed()


def test_kubelet_paths() -> None:
    assert stream.parse_kubelet_path("/containerLogs/ns/pod/c") == stream.KubeletTarget("containerLogs", "ns", "pod", "c")
    assert stream.parse_kubelet_path("/exec/ns/pod/uid-1/c") == stream.KubeletTarget("exec", "ns", "pod", "c", "uid-1")
    assert stream.parse_kubelet_path("/portForward/ns/pod") == stream.KubeletTarget("portForward", "ns", "pod")
    assert stream.parse_kubelet_path("/stats/summary") is None


def _write_log(path: Path) -> None:
    path.write_bytes(b"".join([
        b"2026-01-01T00:00:01.000000001Z stdout F one\n",
        b"2026-01-01T00:00:02.000000002Z stderr P tw\n",
        b"2026-01-01T00:00:02.500000000Z stderr F o\n",
        b"2026-01-01T00:00:03.000000003Z stdout F three\n",
        b"garbage line\n",
        b"2026-01-01T00:00:04.000000004Z stdout F four\n",
    ]))


def _read(path: Path, query: str) -> bytes:
    async def collect() -> bytes:
        async def stopped() -> bool:
            return False

        out = b""
        async for chunk in logs.stream_log(str(path), logs.parse_options(query), stopped):
            out += chunk
        return out

    return asyncio.run(collect())


def test_log_options_as_kubelet(tmp_path: Path) -> None:
    log = tmp_path / "0.log"
    _write_log(log)
    assert _read(log, "") == b"one\ntwo\nthree\nfour\n"
    # lines of the file, as kubelet counts them: the unparsable line is one of the last three
    assert _read(log, "tailLines=3") == b"three\nfour\n"
    assert _read(log, "tailLines=0") == b""
    assert _read(log, "limitBytes=6") == b"one\ntw"
    assert _read(log, "sinceTime=2026-01-01T00:00:03Z") == b"three\nfour\n"
    assert _read(log, "tailLines=1&timestamps=true") == b"2026-01-01T00:00:04.000000004Z four\n"
    assert _read(log, "follow=true&tailLines=1") == b"four\n"  # follow ends: the container is not running


@pytest.mark.parametrize("query", ["tailLines=-1", "tailLines=x", "sinceSeconds=0", "follow=maybe",
                                   "sinceTime=yesterday", "sinceTime=2026-01-01T00:00:00Z&sinceSeconds=5"])
def test_bad_log_options_are_refused(query: str) -> None:
    with pytest.raises(logs.LogOptionsError):
        logs.parse_options(query)


def test_since_seconds_is_relative_to_now() -> None:
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    assert logs.parse_options("sinceSeconds=10", now).since == now - datetime.timedelta(seconds=10)


def test_a_line_written_while_a_tail_is_read_is_not_part_of_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--tail=2`` printed three lines through kube-apiserver once (CI): the container wrote a line
    between finding where the last two begin and reading them. What was there at the request, no more."""
    log = tmp_path / "0.log"
    _write_log(log)
    counted = logs._tail_span

    def then_the_container_writes(path: str, lines: int) -> tuple[int, int]:
        span = counted(path, lines)
        with open(path, "ab") as handle:
            handle.write(b"2026-01-01T00:00:05.000000005Z stdout F five\n")
        return span

    monkeypatch.setattr(logs, "_tail_span", then_the_container_writes)
    assert _read(log, "tailLines=2") == b"four\n"  # the garbage line counts as one, as kubelet counts
    assert _read(log, "tailLines=1") == b"five\n"
