"""The faithful peer ports in benchmarks/limit_peers.py: each documented behaviour of
Netflix's AIMD / Vegas / Gradient2 / WindowedLimit and Envoy's gradient controller,
pinned on short hand-made sample sequences (values worked out from the Java / C++)."""

from __future__ import annotations

import random

import pytest

from script_loader import load_script

P = load_script("benchmarks/limit_peers.py")
MS = 0.001


def test_log10_root_int_is_the_java_table() -> None:
    assert [P.log10_root_int(x) for x in (0, 1, 9, 10, 99, 100, 999, 1000, 12345)] == [
        1, 1, 1, 1, 1, 2, 2, 3, 4]


def test_aimd_grows_only_near_the_limit_and_backs_off_on_timeout_or_drop() -> None:
    a = P.AIMDLimit(min_limit=1)
    a.on_sample(0.0, 10 * MS, 9, False)  # 9 * 2 < 20: app-limited
    assert a.limit == 20
    a.on_sample(0.0, 10 * MS, 10, False)
    assert a.limit == 21
    a.on_sample(0.0, 4.9, 11, False)  # under the 5 s timeout: still a success
    assert a.limit == 22
    a.on_sample(0.0, 5.1, 10, False)
    assert a.limit == int(22 * 0.9) == 19
    a.on_sample(0.0, 10 * MS, 10, True)
    assert a.limit == int(19 * 0.9) == 17


def test_aimd_default_bounds_are_20_and_200() -> None:
    a = P.AIMDLimit()
    a.on_sample(0.0, 10 * MS, 10, True)
    assert a.limit == 20  # int(18) clamped up to the default minimum
    b = P.AIMDLimit(initial=200)
    b.on_sample(0.0, 10 * MS, 200, False)
    assert b.limit == 200


def test_vegas_thresholds_on_the_queue_estimate() -> None:
    v = P.VegasLimit(rng=random.Random(1))
    v.on_sample(0.0, 10 * MS, 20, False)  # first sample: the no-load RTT, no change
    assert v.limit == 20 and v.rtt_noload == 10 * MS
    v.on_sample(0.0, 10 * MS, 20, False)  # queue = 0 <= log10 -> + beta (6)
    assert v.limit == 26
    v.on_sample(0.0, 20 * MS, 26, False)  # queue = ceil(26 * 0.5) = 13 > beta 6 -> - 1
    assert v.limit == 25
    v.on_sample(0.0, 12 * MS, 25, False)  # queue = ceil(25 / 6) = 5: in [alpha, beta], hold
    assert v.limit == 25
    v.on_sample(0.0, 10.5 * MS, 25, False)  # queue = ceil(1.19) = 2 < alpha 3 -> + 1
    assert v.limit == 26
    v.on_sample(0.0, 50 * MS, 12, False)  # inflight * 2 < limit: app-limited, hold
    assert v.limit == 26
    v.on_sample(0.0, 10 * MS, 12, True)  # a drop decreases even when app-limited
    assert v.limit == 25


def test_vegas_probes_a_new_noload_rtt_after_jitter_x_30_x_limit_samples() -> None:
    v = P.VegasLimit(rng=random.Random(3))
    v.on_sample(0.0, 5 * MS, 1, False)
    threshold = v.probe_jitter * 30 * v.estimated
    assert 300 <= threshold < 600
    for _ in range(int(threshold) + 1):
        v.on_sample(0.0, 9 * MS, 1, False)
    assert v.rtt_noload == 9 * MS  # the minimum was replaced by the probe sample


def test_gradient2_tolerates_half_again_the_long_rtt_then_shrinks() -> None:
    g = P.Gradient2Limit(min_limit=1)
    for _ in range(10):  # warm-up: long RTT = plain mean = 10 ms
        g.on_sample(0.0, 10 * MS, 20, False)
    grown = g.estimated
    assert grown == pytest.approx(20 + 10 * 0.8)  # 1.0 gradient, +0.2 x 4 per sample
    g.on_sample(0.0, 15 * MS, 28, False)  # 1.5 x long: still no queueing
    assert g.estimated == pytest.approx(grown + 0.8)
    before = g.estimated
    g.on_sample(0.0, 40 * MS, 28, False)  # gradient clamps at 0.5
    assert g.estimated == pytest.approx(0.8 * before + 0.2 * (0.5 * before + 4))


def test_gradient2_defaults_hold_20_and_skip_app_limited_samples() -> None:
    g = P.Gradient2Limit()
    for _ in range(10):
        g.on_sample(0.0, 10 * MS, 20, False)
    for _ in range(50):
        g.on_sample(0.0, 100 * MS, 40, False)
    assert g.limit == 20  # the default minimum
    g2 = P.Gradient2Limit()
    g2.on_sample(0.0, 10 * MS, 9, False)  # 9 < 20 / 2
    assert g2.estimated == 20


def test_gradient2_decays_a_stale_long_rtt() -> None:
    g = P.Gradient2Limit()
    for _ in range(10):
        g.on_sample(0.0, 100 * MS, 5, False)
    g.on_sample(0.0, 10 * MS, 5, False)  # long / short > 2: long x 0.95 after the EMA
    expected = (100 * MS * (1 - 2 / 601) + 10 * MS * 2 / 601) * 0.95
    assert g.long_rtt.value == pytest.approx(expected)


class Recorder:
    name = "rec"

    def __init__(self) -> None:
        self.limit = 20
        self.calls: list[tuple[float, int, bool]] = []

    def on_sample(self, start: float, rtt: float, inflight: int, did_drop: bool) -> None:
        self.calls.append((rtt, inflight, did_drop))


def test_windowed_limit_feeds_one_averaged_sample_per_second() -> None:
    rec = Recorder()
    w = P.WindowedLimit(rec)
    w.on_sample(0.0, 10 * MS, 3, False)  # closes the empty first window: too few samples
    assert rec.calls == [] and w.next_update == pytest.approx(1.01)
    w.on_sample(0.1, 50e-6, 99, True)  # under the 100 µs threshold: ignored entirely
    for i in range(12):
        w.on_sample(0.1 + i * 0.05, (10 + i) * MS, 5 + i, False)
    assert rec.calls == []  # no sample has ended after next_update yet
    w.on_sample(1.0, 20 * MS, 4, False)  # ends at 1.02 > 1.01: the window closes
    assert len(rec.calls) == 1
    rtt, inflight, drop = rec.calls[0]
    assert rtt == pytest.approx((sum(range(10, 22)) + 20) * MS / 13)
    assert inflight == 16 and drop is False


def test_windowed_limit_skips_windows_with_fewer_than_ten_samples() -> None:
    rec = Recorder()
    w = P.WindowedLimit(rec)
    w.on_sample(0.0, 10 * MS, 3, False)
    for i in range(8):
        w.on_sample(0.1 * i, 10 * MS, 3, False)
    w.on_sample(1.5, 10 * MS, 3, False)  # 9 samples in the window
    assert rec.calls == []


def envoy_measured(min_rtt: float = 10 * MS):  # type: ignore[no-untyped-def]
    e = P.EnvoyGradientController(rng=random.Random(0))
    for _ in range(50):
        e.record(0.0, min_rtt)
    return e


def test_envoy_starts_measuring_min_rtt_at_min_concurrency() -> None:
    e = P.EnvoyGradientController(now=1.0, rng=random.Random(0))
    assert e.measuring and e.limit == 3
    e.record(0.5, 1.01)  # sent before the measurement began: discarded
    for i in range(49):
        e.record(1.0, 1.0 + (10 + i) * MS)
    assert e.measuring
    e.record(1.0, 1.0 + 99 * MS)
    assert not e.measuring and e.limit == 3  # the deferred limit (3) is restored
    assert e.min_rtt == pytest.approx(35 * MS)  # p50 of 10..58 ms and 99 ms
    done = 1.0 + 99 * MS
    assert e.sample_timer == pytest.approx(done + 0.1)
    assert e.min_rtt_timer is not None and done + 60 <= e.min_rtt_timer < done + 69  # 15 % jitter


def test_envoy_window_update_uses_buffered_min_rtt_and_sqrt_headroom() -> None:
    e = envoy_measured()
    t = 0.0
    e.fire(e.next_timer())  # an empty window changes nothing
    assert e.limit == 3
    for _ in range(5):
        e.record(t, t + 10 * MS)
    e.fire(e.next_timer())  # gradient = 1.25 x 10 / 10 -> 3.75 + sqrt(3.75) = 5.69
    assert e.limit == 5
    for _ in range(5):
        e.record(t, t + 5 * MS)
    e.fire(e.next_timer())  # gradient clamps at 2: 10 + sqrt(10)
    assert e.limit == 13


def test_envoy_remeasures_after_five_windows_at_the_minimum() -> None:
    e = envoy_measured()
    for window in range(1, 6):
        e.record(0.0, 0.2)  # p50 20x minRTT: gradient 0.5, floor at 3
        t = e.next_timer()
        e.fire(t)
        assert e.limit == 3 and not e.measuring
        assert (e.min_rtt_timer == t) == (window == 5)  # the fifth arms it at once
    e.fire(e.next_timer())
    assert e.measuring and e.limit == 3
