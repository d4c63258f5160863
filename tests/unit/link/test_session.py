"""Session timing fed with a fake clock: keepalive expiry, heartbeats, backoff, rate limit, bad frames."""

from __future__ import annotations

import random

from cores.link.session import Heartbeat, KeepaliveDeadline, MalformedWindow, Outbox, ReconnectBackoff, TokenBucket


def test_keepalive_expires_only_after_the_timeout_without_one() -> None:
    deadline = KeepaliveDeadline(30.0, now=100.0)
    assert not deadline.expired(130.0)
    assert deadline.expired(130.01)
    deadline.seen(125.0)
    assert not deadline.expired(150.0)
    assert deadline.expired(155.5)


def test_heartbeat_goes_at_once_then_every_interval_and_at_once_on_a_new_session() -> None:
    beat = Heartbeat(15.0)
    assert beat.due(0.0)
    beat.sent(3.0)
    assert not beat.due(17.9) and beat.due(18.0)
    beat.reset()
    assert beat.due(4.0)


def test_backoff_doubles_to_the_cap_with_bounded_jitter_and_resets() -> None:
    backoff = ReconnectBackoff(1.0, 30.0, 0.25, rng=random.Random(7))
    delays = [backoff.next_delay() for _ in range(8)]
    for delay, base in zip(delays, [1, 2, 4, 8, 16, 30, 30, 30]):
        assert base * 0.75 <= delay <= base * 1.25
    assert len({round(d, 6) for d in delays}) == len(delays)  # jittered: a fleet does not reconnect in step
    backoff.reset()
    assert 0.75 <= backoff.next_delay() <= 1.25


def test_token_bucket_allows_the_burst_then_spaces_messages_at_the_rate() -> None:
    bucket = TokenBucket(rate=10.0, burst=3, now=0.0)
    assert [bucket.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert abs(bucket.take(0.0) - 0.1) < 1e-9
    assert abs(bucket.take(0.0) - 0.2) < 1e-9
    assert bucket.take(10.0) == 0.0  # refilled (never past the burst)
    assert [bucket.take(10.0) for _ in range(2)] == [0.0, 0.0]
    assert bucket.take(10.0) > 0


def test_malformed_window_counts_the_last_minute_only() -> None:
    window = MalformedWindow(threshold=3, window=60.0)
    assert not any(window.record(t) for t in (0.0, 1.0, 2.0))
    assert window.record(3.0)  # a fourth within the minute
    assert not window.record(70.0)  # the old ones left the window


def test_outbox_keeps_order_and_counts_what_waits() -> None:
    outbox: Outbox[str] = Outbox(10)
    assert outbox.put("abc") and outbox.put("defg")
    assert (len(outbox), outbox.size) == (2, 7)
    assert outbox.take() == "abc" and outbox.size == 4
    assert outbox.take() == "defg" and outbox.take() is None and outbox.size == 0


def test_outbox_refuses_what_does_not_fit_and_stays_refusing() -> None:
    outbox: Outbox[str] = Outbox(10)
    assert outbox.put("x" * 8)
    assert not outbox.put("yyy") and outbox.overflowed
    assert (len(outbox), outbox.size) == (1, 8)  # nothing half-queued
    outbox.take()
    assert not outbox.put("z")  # an overflowed session is over: no frame may slip in after a gap


def test_outbox_takes_a_frame_of_exactly_its_size() -> None:
    outbox: Outbox[bytes] = Outbox(4)
    assert outbox.put(b"1234") and not outbox.overflowed
