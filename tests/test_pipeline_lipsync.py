"""The streaming pipeline: output length and frame order for every loop/tail mode, frames without a face
(or not to regenerate) passed through bit-identical, windows over face frames only, errors and
interrupts leaving nothing at the output path, and end-to-end runs (still photo, the shared clip, CLI)."""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch

from latentsync_core import host
from latentsync_core.errors import FaceError, ProcessingInterrupted
from latentsync_core.pipeline import (LOOP_MODES, FrameSource, LipsyncOptions, SamplerOptions, StreamStats, lipsync,
                                      lipsync_frames, output_length, plan_runs, source_index)
from latentsync_core.unet.tiny import tiny_unet
from latentsync_core.vae import load_vae
from latentsync_core.vae.fixture import write_vae_fixture

R = 64


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("stream_models")
    write_vae_fixture(root, seed=4)
    return tiny_unet(seed=5), load_vae(root / "vae" / "sd-vae-ft-mse")


@pytest.fixture(scope="module")
def whisper(tmp_path_factory):
    from latentsync_core.audio import load_whisper
    from latentsync_core.audio.tiny import write_fixture

    (path,) = write_fixture(tmp_path_factory.mktemp("whisper_models"), seed=0)
    return load_whisper(path, "cpu", torch.float32)


@pytest.fixture(scope="module")
def photo():
    from skimage import data

    return data.astronaut()  # 512 x 512, one clear frontal face


def _options(**kw):
    sampler = SamplerOptions(steps=2, guidance=1.5, seed=3)
    return LipsyncOptions(sampler=sampler, resolution=R, **kw)


def _audio(indices):
    g = torch.Generator().manual_seed(len(indices))
    return torch.randn(len(indices), 50, 64, generator=g)


def _run(frames, total, models, options, regenerate=None, stats=None):
    unet, vae = models
    out = list(lipsync_frames(FrameSource.open(frames), total, _audio, unet, vae, "bundled",
                              regenerate=regenerate, options=options, stats=stats))
    return np.stack(out) if out else np.zeros((0,) + frames.shape[1:], np.uint8)


# ---------------------------------------------------------------- lengths and order
@pytest.mark.parametrize("video,audio,loop,tail,expected", [
    (10, 25, "pingpong", "trim", 25), (10, 25, "loop", "trim", 25), (10, 25, "freeze", "trim", 25),
    (10, 25, "trim_audio", "trim", 10), (30, 12, "pingpong", "trim", 12), (30, 12, "pingpong", "keep", 30),
    (1, 240, "pingpong", "trim", 240), (7, 7, "loop", "keep", 7),
])
def test_output_length(video, audio, loop, tail, expected):
    assert output_length(video, audio, loop, tail) == expected


def test_pingpong_is_the_official_loop_video_order():
    # Official loop_video: forward, then the reversed video (turning frames shown twice), forward again.
    assert [source_index(i, 4, "pingpong") for i in range(12)] == [0, 1, 2, 3, 3, 2, 1, 0, 0, 1, 2, 3]
    assert [source_index(i, 3, "loop") for i in range(7)] == [0, 1, 2, 0, 1, 2, 0]
    assert [source_index(i, 3, "freeze") for i in range(5)] == [0, 1, 2, 2, 2]
    assert [source_index(i, 1, "pingpong") for i in range(3)] == [0, 0, 0]


@pytest.mark.parametrize("mode", LOOP_MODES)
@pytest.mark.parametrize("n,total", [(1, 5), (4, 11), (5, 3), (3, 3)])
def test_runs_reproduce_the_frame_order(mode, n, total):
    runs = plan_runs(total, n, mode)
    shown = [r.first + r.step * k for r in runs for k in range(r.length)]
    assert shown == [source_index(i, n, mode) for i in range(total)]
    assert all(r.step in (-1, 0, 1) for r in runs)


def test_frames_not_regenerated_come_out_bit_identical_in_loop_order(models, photo):
    frames = np.stack([np.roll(photo, 7 * i, axis=0) for i in range(5)])
    for mode in ("pingpong", "loop", "freeze"):
        out = _run(frames, 13, models, _options(loop_mode=mode, chunk_size=3), regenerate=lambda i: False)
        expected = frames[[source_index(i, 5, mode) for i in range(13)]]
        assert np.array_equal(out, expected), mode


def test_backward_reads_of_a_video_file_match_forward_reads(tmp_path, photo):
    from latentsync_core.media.writer import write_video

    path = tmp_path / "clip.mp4"
    write_video(path, np.stack([np.roll(photo[:128, :128], 9 * i, axis=1) for i in range(9)]), fps=25)
    source = FrameSource.open(path)
    forward = np.concatenate(list(source.read_run(plan_runs(9, 9, "loop")[0], chunk=4)))
    backward = np.concatenate(list(source.read_run(plan_runs(18, 9, "pingpong")[1], chunk=4)))
    assert forward.shape == (9, 128, 128, 3)
    assert np.array_equal(backward, forward[::-1])


# ---------------------------------------------------------------- faces, windows, pass-through
def test_no_face_and_gated_frames_pass_through_and_face_frames_are_regenerated(models, photo):
    blank = np.full_like(photo, 128)
    frames = np.stack([photo, photo, blank, photo, blank, blank, photo, photo, photo])
    stats = StreamStats()
    silent = {7}
    out = _run(frames, 9, models, _options(chunk_size=4), regenerate=lambda i: i not in silent, stats=stats)
    assert out.shape == frames.shape
    for i in (2, 4, 5, 7):  # no face (2, 4, 5) or gated (7): untouched
        assert np.array_equal(out[i], frames[i]), i
    for i in (0, 1, 3, 6, 8):
        assert not np.array_equal(out[i], frames[i]), i
        ys, xs = np.nonzero(np.any(out[i] != frames[i], axis=-1))
        # The change is on the lower face: around the astronaut's nose (x 225, y 127), not elsewhere.
        assert np.hypot(xs - 225, ys - 150).max() < 120 and 127 < ys.mean() < 200
    assert stats.frames == 9 and stats.regenerated == 5 and stats.face_frames == 6
    assert stats.windows == 1  # five face frames, one window straddling the gaps


def test_windows_close_at_sixteen_face_frames(models, photo):
    windows = []
    frames = np.stack([photo] * 20)
    unet, vae = models
    opts = _options()
    gen = lipsync_frames(FrameSource.open(frames), 20, _audio, unet, vae, "bundled", options=opts,
                         on_window=lambda k, w: windows.append(list(w)))
    assert sum(1 for _ in gen) == 20
    assert windows == [list(range(16)), list(range(16, 20))]


def test_zero_face_frames_is_an_error_and_writes_nothing(models, whisper, tmp_path):
    unet, vae = models
    out = tmp_path / "out.mp4"
    from latentsync_core.media.audio_file import AudioClip

    tone = AudioClip(np.sin(np.linspace(0, 400, 8000, dtype=np.float32))[None], 16000)
    with pytest.raises(FaceError, match="no face"):
        lipsync(np.full((6, 96, 96, 3), 90, np.uint8), tone, out, unet=unet, vae=vae, whisper=whisper,
                options=_options(), fps=25)
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_interrupt_mid_run_leaves_nothing_at_the_output(models, whisper, photo, tmp_path):
    unet, vae = models
    from latentsync_core.media.audio_file import AudioClip

    tone = AudioClip(0.3 * np.sin(np.linspace(0, 3000, 16000, dtype=np.float32))[None], 16000)
    out = tmp_path / "out.mp4"
    calls = []

    def step_hook(module, inputs, output):
        calls.append(1)
        if len(calls) == 3:
            host.request_interrupt()

    handle = unet.register_forward_hook(step_hook)
    try:
        with pytest.raises(ProcessingInterrupted):
            lipsync(np.stack([photo] * 20), tone, out, unet=unet, vae=vae, whisper=whisper,
                    options=_options(), fps=25)
    finally:
        handle.remove()
        host.clear_interrupt()
    assert len(calls) == 3  # stopped between steps of the first window
    assert not out.exists() and list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- end to end
def test_still_photo_is_frozen_to_the_official_length_of_the_audio(models, whisper, photo, tmp_path):
    from PIL import Image

    from latentsync_core.media.audio_file import AudioClip
    from latentsync_core.media.video import probe_video

    still = tmp_path / "face.png"
    Image.fromarray(photo).save(still)
    tone = AudioClip(0.3 * np.sin(np.linspace(0, 2000, 16000, dtype=np.float32))[None], 16000)  # 1.0 s
    unet, vae = models
    result = lipsync(still, tone, tmp_path / "still.mp4", unet=unet, vae=vae, whisper=whisper,
                     options=_options())
    info = probe_video(result.path)
    # 1 s at 16 kHz -> 100 mel frames -> 50 Whisper positions; the official appends chunks for frames
    # i = 0, 1, ... and stops after the first whose centre int(2 i) passes 50: i = 26, so 27 frames.
    assert info.num_frames == 27 and info.fps == 25 and (info.width, info.height) == (512, 512)
    # The 25 frames that start before the audio ends get a new mouth; the 2 official extra frames do not.
    assert info.has_audio and result.stats.regenerated == 25 and result.stats.windows == 2
    short = lipsync(still, tone, tmp_path / "short.mp4", unet=unet, vae=vae, whisper=whisper,
                    options=_options(official_length=False))
    assert probe_video(short.path).num_frames == 25


@pytest.mark.media
def test_cli_random_tiny_on_the_shared_clip(media_dir, tmp_path, capsys):
    import av

    from latentsync_core.cli import main
    from latentsync_core.media.video import probe_video

    out = tmp_path / "synced.mp4"
    code = main(["run", "--weights", "random-tiny", "--video", str(media_dir / "demo1_video.mp4"),
                 "--audio", str(media_dir / "demo1_audio.wav"), "--out", str(out), "--steps", "3",
                 "--max-frames", "20", "--deepcache", "3"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "NOT a lip-sync" in printed
    source, info = probe_video(media_dir / "demo1_video.mp4"), probe_video(out)
    assert info.num_frames == 20 and info.fps == source.fps
    assert (info.width, info.height) == (source.width, source.height)
    with av.open(str(out)) as container:
        audio = container.streams.audio[0]
        assert audio.codec_context.name == "aac" and audio.rate == 16000  # the driving audio, its own rate
        duration = float(audio.duration * audio.time_base)
    assert abs(duration - 20 / 25) < 0.05


def test_cli_reports_missing_models(tmp_path, monkeypatch, capsys):
    from latentsync_core.cli import EXIT_MODELS_MISSING, main

    monkeypatch.setenv("LATENTSYNC_MODELS_DIR", str(tmp_path / "empty"))
    code = main(["run", "--no-download", "--video", "v.mp4", "--audio", "a.wav"])
    assert code == EXIT_MODELS_MISSING
    err = capsys.readouterr().err
    assert "latentsync_unet.pt" in err and "sd-vae-ft-mse" in err and "tiny.pt" in err


# 1 s of audio = 50 Whisper positions. Official length: chunks for i = 0, 1, ... up to the first i whose
# centre floor(i * 50 / fps) passes 50 (60 fps: i = 62 -> 63 frames; 24000/1001: i = 25 -> 26 frames);
# without it, the frames that start before the audio ends (60 and 24).
@pytest.mark.parametrize("fps,official,frames", [(60, True, 63), (60, False, 60), (Fraction(24000, 1001), True, 26),
                                                 (Fraction(24000, 1001), False, 24)])
def test_odd_frame_rates_get_the_official_or_the_audio_length(models, whisper, photo, tmp_path, fps, official, frames):
    from latentsync_core.media.audio_file import AudioClip
    from latentsync_core.media.video import probe_video

    tone = AudioClip(0.3 * np.sin(np.linspace(0, 2000, 16000, dtype=np.float32))[None], 16000)  # 1.0 s
    unet, vae = models
    options = LipsyncOptions(sampler=SamplerOptions(steps=1, guidance=1.0), resolution=R, official_length=official)
    result = lipsync(np.stack([photo] * 3), tone, tmp_path / "out.mp4", unet=unet, vae=vae, whisper=whisper,
                     options=options, fps=fps)
    info = probe_video(result.path)
    assert info.fps == fps and info.num_frames == frames == result.frames
    assert result.stats.face_frames == frames


def test_seamless_blend_on_the_stream_changes_only_the_face_and_leaves_faceless_frames_alone(models, photo):
    blank = np.full_like(photo, 128)
    frames = np.stack([photo, blank, photo, photo])
    box = _run(frames, 4, models, _options(chunk_size=4))
    seamless = _run(frames, 4, models, _options(chunk_size=4, blend="seamless"))
    assert np.array_equal(seamless[1], frames[1]) and np.array_equal(box[1], frames[1])
    for i in (0, 2, 3):
        differs = np.any(seamless[i] != box[i], axis=-1)
        assert differs.any(), i  # the blend did something
        for changed in (differs, np.any(seamless[i] != frames[i], axis=-1)):
            ys, xs = np.nonzero(changed)
            # only around the astronaut's lower face (nose at x 225, y 127), as in the crop_box test above
            assert np.hypot(xs - 225, ys - 150).max() < 120, i
    with pytest.raises(ValueError, match="blend must be one of crop_box, seamless"):
        _run(frames, 4, models, _options(blend="poisson"))
