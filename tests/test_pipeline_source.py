"""Reading frames in output order: backward (pingpong) runs decode each block once; float IMAGE chunks
become uint8 once, in small slices; the bounded producer/consumer stages."""
from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from latentsync_core.face.frames import as_rgb_uint8
from latentsync_core.pipeline import FrameSource, plan_runs, source_index
from latentsync_core.pipeline.prefetch import BackgroundSink, prefetch


def _numbered(n: int, size: int = 16) -> np.ndarray:
    frames = np.zeros((n, size, size, 3), np.uint8)
    frames[:, 0, 0, 0] = np.arange(n)
    return frames


def test_pingpong_reads_each_backward_block_with_one_decode(monkeypatch):
    frames = _numbered(50)
    source = FrameSource.open(frames, fps=25)
    calls = []
    original = source._forward

    def counting(first, count, chunk):
        calls.append(((first, count), chunk))
        return original(first, count, chunk)

    monkeypatch.setattr(source, "_forward", counting)
    monkeypatch.setattr("latentsync_core.pipeline.source.REVERSE_BUDGET_BYTES", 20 * 16 * 16 * 3)  # 20 frames
    total = 130
    got = []
    for run in plan_runs(total, 50, "pingpong"):
        for chunk in source.read_run(run, 6):
            assert len(chunk) <= 6
            got.extend(int(f[0, 0, 0]) for f in chunk)
    assert got == [source_index(i, 50, "pingpong") for i in range(total)]
    # Forward 0..49, backward in blocks of 20 (three decodes, not one per 6-frame chunk: nine), forward 0..29.
    assert [c for c, _ in calls] == [(0, 50), (30, 20), (10, 20), (0, 10), (0, 30)]
    assert all(chunk == 6 for _, chunk in calls)  # a block is filled chunk by chunk, never copied whole


def test_reverse_block_fits_the_memory_budget():
    big = FrameSource(10, 25, (1080, 1920))
    small = FrameSource(10, 25, (64, 64))
    assert 16 <= big.reverse_block(16) <= 64 and small.reverse_block(16) > 500


def test_float_images_convert_to_uint8_once_in_slices_with_the_same_rounding():
    rng = np.random.default_rng(0)
    images = torch.from_numpy(rng.random((11, 9, 7, 3), dtype=np.float32))
    images[0, 0, 0] = torch.tensor([1.2, -0.1, 0.5 / 255])  # out of range and a rounding tie
    out = as_rgb_uint8(images)
    whole = np.clip(np.rint(images.numpy() * 255.0), 0, 255).astype(np.uint8)  # the unsliced conversion
    assert out.dtype == np.uint8 and np.array_equal(out, whole)
    assert as_rgb_uint8(out) is out  # uint8 input: no copy


def test_prefetch_runs_ahead_in_order_and_reraises_errors():
    seen_threads = set()

    def items():
        for i in range(10):
            seen_threads.add(threading.current_thread().name)
            yield i

    assert list(prefetch(items(), 2)) == list(range(10))
    assert seen_threads == {"latentsync-prefetch"}

    def broken():
        yield 1
        raise ValueError("decoder failed at frame 2")

    with pytest.raises(ValueError, match="frame 2"):
        list(prefetch(broken(), 2))


def test_prefetch_close_stops_the_producer():
    produced = []

    def endless():
        i = 0
        while True:
            produced.append(i)
            yield i
            i += 1

    stream = prefetch(endless(), 3)
    assert next(stream) == 0
    stream.close()
    count = len(produced)
    assert count <= 6 and not stream._thread.is_alive()


def test_background_sink_consumes_in_order_and_reraises():
    got = []
    sink = BackgroundSink(got.append, depth=2)
    for i in range(20):
        sink.put(i)
    sink.close()
    assert got == list(range(20))

    def fail(item):
        raise OSError("disk full")

    sink = BackgroundSink(fail, depth=2)
    sink.put(1)
    with pytest.raises(OSError, match="disk full"):
        sink.close()
