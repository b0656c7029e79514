"""Video reading: probe, streaming decode, chunking, seeking, VFR -> CFR, rotation, the real clip."""
from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest

from latentsync_core.media.video import VideoInfo, iter_video_frames, probe_video, read_video
from latentsync_core.media.writer import write_video


def moving_gradient(n, height, width, seed=0):
    """Smooth frames whose content changes every frame (so frame order is checkable)."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    frames = []
    for i in range(n):
        r = 128 + 90 * np.sin((xx + 3 * i) / 23.0 + seed)
        g = 128 + 90 * np.cos((yy - 2 * i) / 29.0)
        b = 128 + 60 * np.sin((xx + yy + 4 * i) / 31.0)
        frames.append(np.stack([r, g, b], axis=-1))
    return np.clip(np.stack(frames), 0, 255).round().astype(np.uint8)


def write_raw(path, frames, *, rate=25, pts=None, time_base=None, rotation=None, crf=12, gop=250):
    """Encode with PyAV directly (independent of our writer): optional explicit pts and display rotation."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf), "g": str(gop), "keyint_min": str(min(gop, 25))}
        if time_base is not None:
            stream.codec_context.time_base = time_base
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i if pts is None else pts[i]
            if time_base is not None:
                frame.time_base = time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


@pytest.fixture(scope="module")
def clip30(tmp_path_factory):
    frames = moving_gradient(30, 48, 64)
    path = write_raw(tmp_path_factory.mktemp("video") / "clip30.mp4", frames, crf=0)  # lossless-ish
    return path, frames


def test_probe_reports_size_rate_count(clip30):
    path, frames = clip30
    info = probe_video(path)
    assert isinstance(info, VideoInfo)
    assert (info.width, info.height) == (64, 48)
    assert info.fps == Fraction(25) and isinstance(info.fps, Fraction)
    assert info.num_frames == 30
    assert info.duration == pytest.approx(30 / 25)
    assert not info.has_audio and info.audio_sample_rate is None and info.audio_channels is None


def test_read_video_uint8_and_float(clip30):
    path, frames = clip30
    video, fps = read_video(path)
    assert video.shape == frames.shape and video.dtype == np.uint8 and fps == 25
    # crf 0 is near-lossless; what remains is 8-bit YUV 4:2:0 quantisation (measured 1.36).
    assert np.abs(video.astype(int) - frames).mean() < 2.0
    as_float, _ = read_video(path, max_frames=5, dtype=np.float32)
    assert as_float.shape == (5, 48, 64, 3) and as_float.dtype == np.float32
    np.testing.assert_allclose(as_float, video[:5] / 255.0, atol=1e-6)


def test_iter_chunks_start_and_limits_match_full_read(clip30):
    path, _ = clip30
    full, _ = read_video(path)
    chunks = list(iter_video_frames(path, chunk_size=8))
    assert [len(c) for c in chunks] == [8, 8, 8, 6]
    np.testing.assert_array_equal(np.concatenate(chunks), full)
    # start > 0 seeks; the frames must still be exactly the same slots.
    part = list(iter_video_frames(path, start=17, max_frames=5))
    assert len(part) == 5
    np.testing.assert_array_equal(np.stack(part), full[17:22])
    assert len(list(iter_video_frames(path, start=28))) == 2
    assert list(iter_video_frames(path, start=30)) == []
    assert list(iter_video_frames(path, max_frames=0)) == []


def test_seek_to_mid_stream_keyframes_with_b_frames(tmp_path):
    frames = moving_gradient(40, 32, 48)
    path = write_raw(tmp_path / "gop.mp4", frames, gop=6)  # keyframes every 6 frames, B-frames on
    with av.open(str(path)) as container:
        keyframes = sum(1 for packet in container.demux(video=0) if packet.is_keyframe)
    assert keyframes >= 6
    full, _ = read_video(path)
    for start in (5, 6, 13, 37):
        part = np.stack(list(iter_video_frames(path, start=start, max_frames=4)))
        np.testing.assert_array_equal(part, full[start:start + 4])


def test_chunks_are_independent_buffers(clip30):
    path, _ = clip30
    first, second = list(iter_video_frames(path, max_frames=4, chunk_size=2))
    snapshot = second.copy()
    first[:] = 0  # a consumer scribbling on one chunk must not change another
    np.testing.assert_array_equal(second, snapshot)


def test_variable_frame_rate_is_resampled_to_constant_rate(tmp_path):
    # Timestamps in ms: regular, then a 120 ms gap, then three frames inside one 40 ms slot.
    times_ms = [0, 40, 80, 200, 205, 210, 240, 280, 320, 360]
    levels = [20 + 20 * i for i in range(len(times_ms))]
    frames = np.stack([np.full((32, 32, 3), level, np.uint8) for level in levels])
    path = write_raw(tmp_path / "vfr.mp4", frames, pts=times_ms, time_base=Fraction(1, 1000), crf=0)

    info = probe_video(path)
    video, fps = read_video(path)
    assert fps == info.fps == Fraction(25)
    # Reference: output slot k shows the last input frame whose nearest slot is <= k.
    nearest = [int(np.floor(t / 1000 * fps + 0.5)) for t in times_ms]
    expected = [max(i for i, s in enumerate(nearest) if s <= k) for k in range(max(nearest) + 1)]
    assert expected == [0, 1, 2, 2, 2, 5, 6, 7, 8, 9]  # sanity of the scenario: a gap and a drop
    assert len(video) == info.num_frames == len(expected)
    got = [int(np.argmin([abs(frame.mean() - level) for level in levels])) for frame in video]
    assert got == expected


@pytest.mark.parametrize("rotation", [90, -90, 180])
def test_display_rotation_is_applied(tmp_path, rotation):
    if not hasattr(av.video.stream.VideoStream, "set_display_rotation"):
        pytest.skip("this PyAV cannot write a display matrix")
    frames = moving_gradient(3, 32, 48)
    frames[:, :6, :6] = (255, 0, 0)  # a red marker in the stored top-left corner
    path = write_raw(tmp_path / f"rot{rotation}.mp4", frames, rotation=rotation, crf=0)
    info = probe_video(path)
    video, _ = read_video(path)
    upright = np.rot90(frames, rotation // 90, axes=(1, 2))  # counter-clockwise, as players show it
    assert info.rotation == rotation
    assert (info.height, info.width) == upright.shape[1:3]
    assert video.shape == upright.shape
    assert np.abs(video.astype(int) - upright).mean() < 3.0


@pytest.mark.media
def test_real_clip_first_frames(media_dir):
    path = media_dir / "demo1_video.mp4"
    info = probe_video(path)
    assert (info.width, info.height) == (1080, 1920)  # portrait, upright
    assert info.fps == Fraction(25)
    assert info.num_frames == 250
    assert info.has_audio and info.audio_sample_rate == 44100 and info.audio_channels == 2
    video, fps = read_video(path, max_frames=10)
    assert video.shape == (10, 1920, 1080, 3) and fps == 25
    # 1080 * 3 bytes is not a multiple of FFmpeg's line alignment: single frames still come contiguous.
    first = next(iter(iter_video_frames(path)))
    assert first.flags.c_contiguous
    np.testing.assert_array_equal(first, video[0])
    # Real content, and frames differ from one another (a talking head moves).
    assert 30 < video.mean() < 225 and video.std() > 20
    assert np.abs(video[0].astype(int) - video[9]).mean() > 0.5


def test_writer_round_trip_at_ntsc_rate(tmp_path):
    frames = moving_gradient(12, 32, 32)
    path = write_video(tmp_path / "ntsc.mp4", frames, Fraction(30000, 1001))
    info = probe_video(path)
    assert info.fps == Fraction(30000, 1001) and info.num_frames == 12
