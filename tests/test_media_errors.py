"""Bad inputs to the media readers/writer raise MediaError naming the file and the problem."""
from __future__ import annotations

import wave

import av
import numpy as np
import pytest

from latentsync_core.errors import LatentSyncError, MediaError
from latentsync_core.media.audio_file import read_audio
from latentsync_core.media.video import iter_video_frames, probe_video, read_video
from latentsync_core.media.writer import VideoWriter, write_video
from test_media_audio import tones, write_audio_file
from test_media_video import moving_gradient

VIDEO_READERS = {
    "probe_video": probe_video,
    "read_video": read_video,
    "iter_video_frames": lambda path: list(iter_video_frames(path)),
}
ALL_READERS = {**VIDEO_READERS, "read_audio": read_audio}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad")
    noisy = np.random.default_rng(0).integers(0, 256, (60, 64, 64, 3), dtype=np.uint8)
    good = write_video(folder / "good.mp4", noisy, 25)  # moov at the front (faststart)
    data = good.read_bytes()
    (folder / "truncated.mp4").write_bytes(data[: len(data) // 2])
    third = len(data) // 3
    garbage = np.random.default_rng(1).integers(0, 256, third, dtype=np.uint8).tobytes()
    (folder / "corrupt.mp4").write_bytes(data[:third] + garbage + data[2 * third:])
    (folder / "notmedia.mp4").write_text("this is not a video\n" * 50)
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "adir.mp4").mkdir()
    # A file whose moov (index) is at the end and cut off: nothing can be opened.
    with av.open(str(folder / "slow.mp4"), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width = stream.height = 32
        stream.pix_fmt = "yuv420p"
        for i in range(10):
            frame = av.VideoFrame.from_ndarray(moving_gradient(1, 32, 32, seed=i)[0], format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    slow = (folder / "slow.mp4").read_bytes()
    assert slow.index(b"moov") > slow.index(b"mdat")
    (folder / "no_index.mp4").write_bytes(slow[: slow.index(b"moov") - 4])
    write_audio_file(folder / "tone.wav", np.round(tones(16000, 1, 0.5) * 2 ** 15).astype(np.int16),
                     16000, "pcm_s16le", "s16")
    with wave.open(str(folder / "silent0.wav"), "wb") as empty_wav:  # a valid header, zero frames
        empty_wav.setnchannels(1)
        empty_wav.setsampwidth(2)
        empty_wav.setframerate(16000)
    return folder


def _message(reader, path):
    with pytest.raises(MediaError) as info:
        reader(path)
    message = str(info.value)
    assert str(path) in message, message  # always names the file
    assert isinstance(info.value, LatentSyncError)
    return info.value


@pytest.mark.parametrize("reader", list(ALL_READERS))
def test_missing_file(files, reader):
    error = _message(ALL_READERS[reader], files / "nope.mp4")
    assert "file not found" in str(error)


@pytest.mark.parametrize("reader", list(ALL_READERS))
def test_directory(files, reader):
    assert "is a directory" in str(_message(ALL_READERS[reader], files / "adir.mp4"))


@pytest.mark.parametrize("reader", list(ALL_READERS))
def test_empty_file(files, reader):
    assert "empty (0 bytes)" in str(_message(ALL_READERS[reader], files / "empty.mp4"))


@pytest.mark.parametrize("reader", list(ALL_READERS))
def test_unknown_format(files, reader):
    error = _message(ALL_READERS[reader], files / "notmedia.mp4")
    assert "not a readable media file" in str(error)
    assert isinstance(error.__cause__, av.FFmpegError)  # the PyAV error is chained, not lost


@pytest.mark.parametrize("reader", list(ALL_READERS))
def test_missing_index(files, reader):
    assert "not a readable media file" in str(_message(ALL_READERS[reader], files / "no_index.mp4"))


@pytest.mark.parametrize("reader", list(VIDEO_READERS))
def test_truncated_video(files, reader):
    error = _message(VIDEO_READERS[reader], files / "truncated.mp4")
    assert "truncated" in str(error) and "60 frames" in str(error)


@pytest.mark.parametrize("reader", ["read_video", "iter_video_frames"])
def test_corrupt_video(files, reader):
    error = _message(VIDEO_READERS[reader], files / "corrupt.mp4")
    assert "corrupt" in str(error)


@pytest.mark.parametrize("reader", list(VIDEO_READERS))
def test_no_video_stream(files, reader):
    error = _message(VIDEO_READERS[reader], files / "tone.wav")
    assert "no video stream" in str(error) and "audio" in str(error)


def test_no_audio_stream(files):
    error = _message(read_audio, files / "good.mp4")
    assert "no audio stream" in str(error) and "video" in str(error)


def test_zero_length_audio(files):
    assert "zero-length audio" in str(_message(read_audio, files / "silent0.wav"))


def test_writer_audio_source_problems(files, tmp_path):
    for source, problem in [(files / "good.mp4", "no audio stream"), (files / "nope.wav", "file not found"),
                            (files / "notmedia.mp4", "not a readable media file")]:
        with pytest.raises(MediaError, match=problem) as info:
            VideoWriter(tmp_path / "out.mp4", 25, audio=source)
        assert str(source) in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_writer_bad_codec_is_a_media_error(tmp_path):
    with pytest.raises(MediaError, match="encoder failed"):
        with VideoWriter(tmp_path / "x.mp4", 25, codec="no-such-codec") as writer:
            writer.write(np.zeros((16, 16, 3), np.uint8))
    assert list(tmp_path.iterdir()) == []


def test_non_path_input():
    with pytest.raises(MediaError, match="expected a file path"):
        read_audio(12345)
