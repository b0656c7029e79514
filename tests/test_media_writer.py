"""VideoWriter / write_video: round trips, odd sizes, audio muxing and trimming, atomic output."""
from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest

from latentsync_core.errors import MediaError
from latentsync_core.media.audio_file import AudioClip, read_audio
from latentsync_core.media.video import probe_video, read_video
from latentsync_core.media.writer import VideoWriter, pad_to_even, write_video
from test_media_audio import aligned_correlation, tones, write_audio_file
from test_media_video import moving_gradient

# Mean absolute RGB error (0..255) after a crf-18 H.264 round trip of moving_gradient content.
# Measured 1.78 at 64x48 and 1.67 at 320x240 (BT.709 4:2:0 8-bit + x264 medium); crf 0 gives
# 1.42 / 1.47, so most of it is 4:2:0 chroma, not the encoder.
CRF18_MEAN_ABS_ERROR_BOUND = 2.5


def leftovers(folder, name):
    return sorted(p.name for p in folder.iterdir() if p.name != name and "partial" in p.name)


def test_round_trip_count_rate_size_and_pixels(tmp_path):
    frames = moving_gradient(40, 48, 64)
    path = write_video(tmp_path / "out.mp4", frames, 25)
    video, fps = read_video(path)
    assert fps == Fraction(25) and isinstance(fps, Fraction)
    assert video.shape == frames.shape
    error = np.abs(video.astype(int) - frames).mean()
    assert error < CRF18_MEAN_ABS_ERROR_BOUND, error
    # Frame order survives: each decoded frame is closest to its own source frame.
    nearest = [int(np.argmin(np.abs(frames.astype(int) - v).mean(axis=(1, 2, 3)))) for v in video[::7]]
    assert nearest == list(range(0, 40, 7))
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.codec_context.pix_fmt == "yuv420p"
    assert leftovers(tmp_path, "out.mp4") == []


def test_lower_crf_is_closer(tmp_path):
    frames = moving_gradient(10, 48, 64)
    errors = []
    for crf in (10, 30):
        video, _ = read_video(write_video(tmp_path / f"crf{crf}.mp4", frames, 25, crf=crf))
        errors.append(np.abs(video.astype(int) - frames).mean())
    assert errors[0] < errors[1]


@pytest.mark.parametrize("height, width", [(33, 48), (32, 47), (17, 31)])
def test_odd_sizes_are_padded_by_edge_replication(tmp_path, height, width):
    frames = moving_gradient(6, height, width)
    path = write_video(tmp_path / "odd.mp4", frames, 25)
    info = probe_video(path)
    assert (info.width, info.height) == (width + width % 2, height + height % 2)
    video, _ = read_video(path)
    # The original content is all there...
    assert np.abs(video[:, :height, :width].astype(int) - frames).mean() < CRF18_MEAN_ABS_ERROR_BOUND
    # ...and the added row/column repeats the last one.
    np.testing.assert_array_equal(pad_to_even(frames)[:, :height, :width], frames)
    padded = pad_to_even(frames).astype(int)
    assert np.abs(video.astype(int) - padded).mean() < CRF18_MEAN_ABS_ERROR_BOUND


def test_streamed_writes_of_mixed_chunks(tmp_path):
    frames = moving_gradient(23, 32, 32)
    with VideoWriter(tmp_path / "s.mp4", 12) as writer:
        writer.write(frames[:5])        # a batch
        writer.write(frames[5])         # a single [H, W, 3] frame
        writer.write(frames[6:6])       # empty batches are ignored
        writer.write(frames[6:23])
    assert writer.frames_written == 23
    video, fps = read_video(tmp_path / "s.mp4")
    assert len(video) == 23 and fps == 12


@pytest.mark.parametrize("sample_rate, channels", [(44100, 2), (16000, 1), (48000, 2)])
def test_audio_keeps_rate_channels_and_waveform(tmp_path, sample_rate, channels):
    seconds = 2.0
    reference = tones(sample_rate, channels, seconds)
    frames = moving_gradient(int(seconds * 25), 32, 32)
    path = write_video(tmp_path / "av.mp4", frames, 25, audio=AudioClip(reference, sample_rate))
    info = probe_video(path)
    assert info.has_audio and info.audio_sample_rate == sample_rate and info.audio_channels == channels
    with av.open(str(path)) as container:
        assert container.streams.audio[0].codec_context.name == "aac"
    clip = read_audio(path)
    assert clip.sample_rate == sample_rate and clip.num_channels == channels
    assert clip.num_samples == reference.shape[1]
    for c in range(channels):
        correlation, lag = aligned_correlation(reference[c], clip.samples[c])
        assert correlation >= 0.99, (c, correlation)
        assert lag == 0  # the mp4 edit list removes the AAC encoder delay


def test_audio_longer_than_video_is_trimmed(tmp_path):
    reference = tones(44100, 2, 3.0)
    frames = moving_gradient(25, 32, 32)  # 1.0 s at 25 fps
    path = write_video(tmp_path / "trim.mp4", frames, 25, audio=AudioClip(reference, 44100))
    clip = read_audio(path)
    assert clip.num_samples == 44100
    correlation, _ = aligned_correlation(reference[0, :44100], clip.samples[0])
    assert correlation >= 0.99


def test_audio_shorter_than_video_is_not_padded(tmp_path):
    reference = tones(16000, 1, 0.5)
    path = write_video(tmp_path / "short.mp4", moving_gradient(25, 32, 32), 25,
                       audio=AudioClip(reference, 16000))
    assert read_audio(path).num_samples == 8000
    assert probe_video(path).num_frames == 25


def test_audio_from_a_file_path_is_streamed_and_reencoded(tmp_path):
    reference = tones(48000, 2, 2.5)
    stored = np.round(reference * 2 ** 15).astype(np.int16)
    wav = write_audio_file(tmp_path / "in.wav", stored, 48000, "pcm_s16le", "s16")
    frames = moving_gradient(50, 32, 32)  # 2.0 s
    path = write_video(tmp_path / "wav.mp4", frames, 25, audio=wav)
    clip = read_audio(path)
    assert clip.sample_rate == 48000 and clip.num_channels == 2 and clip.num_samples == 96000
    for c in range(2):
        assert aligned_correlation(stored[c, :96000] / 2 ** 15, clip.samples[c])[0] >= 0.99

    # A video file works as an audio source too (its audio track is used).
    again = write_video(tmp_path / "again.mp4", frames[:25], 25, audio=path)
    clip2 = read_audio(again)
    assert clip2.sample_rate == 48000 and clip2.num_channels == 2 and clip2.num_samples == 48000
    assert aligned_correlation(clip.samples[0, :48000], clip2.samples[0])[0] >= 0.99


def test_unusual_sample_rate_is_stored_at_next_aac_rate(tmp_path):
    reference = tones(37800, 1, 1.0)
    path = write_video(tmp_path / "r.mp4", moving_gradient(25, 32, 32), 25, audio=AudioClip(reference, 37800))
    clip = read_audio(path)
    assert clip.sample_rate == 44100 and clip.num_channels == 1
    assert abs(clip.num_samples - 44100) <= 1024


def test_exception_inside_with_leaves_nothing(tmp_path):
    target = tmp_path / "fail.mp4"
    with pytest.raises(RuntimeError, match="boom"):
        with VideoWriter(target, 25, audio=AudioClip(tones(16000, 1, 1.0), 16000)) as writer:
            writer.write(moving_gradient(10, 32, 32))
            raise RuntimeError("boom")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(MediaError, match="aborted"):
        writer.close()  # no silent "success" after an abort
    assert not target.exists()


def test_failure_keeps_an_existing_target_untouched(tmp_path):
    target = tmp_path / "keep.mp4"
    target.write_bytes(b"previous result")
    with pytest.raises(KeyboardInterrupt):
        with VideoWriter(target, 25) as writer:
            writer.write(moving_gradient(3, 32, 32))
            raise KeyboardInterrupt
    assert target.read_bytes() == b"previous result"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.mp4"]


def test_writer_misuse_is_reported(tmp_path):
    with pytest.raises(MediaError, match="no frames were written"):
        with VideoWriter(tmp_path / "empty.mp4", 25):
            pass
    assert list(tmp_path.iterdir()) == []

    with pytest.raises(MediaError, match="differs from the first frame's 32x32"):
        with VideoWriter(tmp_path / "size.mp4", 25) as writer:
            writer.write(np.zeros((32, 32, 3), np.uint8))
            writer.write(np.zeros((32, 48, 3), np.uint8))
    with pytest.raises(MediaError, match="must be uint8"):
        with VideoWriter(tmp_path / "dtype.mp4", 25) as writer:
            writer.write(np.zeros((32, 32, 3), np.float32))
    with pytest.raises(MediaError, match=r"\[N, H, W, 3\]"):
        with VideoWriter(tmp_path / "shape.mp4", 25) as writer:
            writer.write(np.zeros((32, 32, 4), np.uint8))
    assert list(tmp_path.iterdir()) == []

    with pytest.raises(MediaError, match="unsupported extension '.avi'"):
        VideoWriter(tmp_path / "x.avi", 25)
    with pytest.raises(MediaError, match="fps must be positive"):
        VideoWriter(tmp_path / "x.mp4", 0)
    with pytest.raises(MediaError, match="zero-length audio"):
        VideoWriter(tmp_path / "x.mp4", 25, audio=AudioClip(np.zeros((2, 0), np.float32), 44100))
    assert list(tmp_path.iterdir()) == []


def test_writer_dropped_without_close_removes_its_temp_file(tmp_path):
    import gc

    writer = VideoWriter(tmp_path / "dropped.mp4", 25)
    writer.write(moving_gradient(80, 32, 32))  # past x264's lookahead, so packets reach the file
    assert len(list(tmp_path.iterdir())) == 1  # the hidden partial file exists meanwhile
    del writer
    gc.collect()
    assert list(tmp_path.iterdir()) == []
