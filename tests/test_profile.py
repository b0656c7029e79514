"""latentsync_core.profile: exclusive per-stage wall time, a no-op when no Profile is active.

A fake clock makes the accounting exact (no timing assertions)."""
from __future__ import annotations

import threading

import pytest

from latentsync_core import profile
from latentsync_core.profile import Profile, stage, timed_iter


@pytest.fixture
def clock(monkeypatch):
    """perf_counter that only moves when the test advances it."""
    now = [100.0]

    def advance(seconds: float) -> None:
        now[0] += seconds

    monkeypatch.setattr(profile.time, "perf_counter", lambda: now[0])
    return advance


def test_nested_stages_are_exclusive_and_sum_to_the_timed_span(clock):
    with Profile() as prof:
        clock(1.0)  # outside any stage: glue
        with stage("unet"):
            clock(2.0)
            with stage("vae_decode"):
                clock(0.5)
            clock(3.0)
        with stage("unet"):
            clock(4.0)
    assert prof.seconds == {"unet": 9.0, "vae_decode": 0.5}
    assert prof.main_seconds == prof.seconds and prof.background == set()
    assert prof.calls == {"unet": 2, "vae_decode": 1}
    assert prof.total() == 9.5  # of 10.5 s elapsed: 1 s was outside every stage


def test_decorator_and_context_are_noops_without_a_profile(clock):
    @stage("encode")
    def double(x):
        clock(1.0)
        return 2 * x

    assert double(21) == 42
    with stage("decode"):
        clock(1.0)
    with Profile() as prof:
        assert double(1) == 2
    assert dict(prof.seconds) == {"encode": 1.0}
    assert double.__name__ == "double"


def test_a_failing_stage_still_closes(clock):
    with Profile() as prof:
        with pytest.raises(ValueError):
            with stage("restore"):
                clock(2.0)
                raise ValueError("boom")
        with stage("encode"):
            clock(1.0)
    assert prof.seconds == {"restore": 2.0, "encode": 1.0}


def test_timed_iter_charges_producing_items_not_consuming_them(clock):
    def frames():
        for i in range(3):
            clock(1.0)  # decoding one chunk
            yield i

    with Profile() as prof:
        seen = []
        for item in timed_iter("decode", frames()):
            with stage("unet"):
                clock(5.0)
            seen.append(item)
    assert seen == [0, 1, 2]
    assert prof.seconds == {"decode": 3.0, "unet": 15.0}


def test_other_threads_are_reported_as_background():
    with Profile() as prof:
        def work():
            with stage("decode"):
                pass

        thread = threading.Thread(target=work)
        thread.start()
        thread.join()
        with stage("unet"):
            pass
    assert prof.background == {"decode"}
    assert "decode" in prof.seconds and "decode" not in prof.main_seconds and "unet" in prof.main_seconds


def test_profiles_nest_and_restore_the_outer_one(clock):
    with Profile() as outer:
        with Profile() as inner:
            with stage("unet"):
                clock(1.0)
        with stage("encode"):
            clock(2.0)
    assert inner.seconds == {"unet": 1.0} and outer.seconds == {"encode": 2.0}
    assert profile._active is None
