"""The one lip-sync engine: window planning (training-rate spacing), batched windows equal to one at a time,
the out-of-memory fallback, and the bookkeeping of which frames get a new mouth."""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch

from latentsync_core.audio import FrameAudio
from latentsync_core.face import FaceCropInfo, crop_size, mouth_mask
from latentsync_core.pipeline import (AlignedFaces, LipsyncEngine, SamplerOptions, active_frames, decode_faces,
                                      encode_faces, face_image, keep_mask_from_mouth, sample_window)
from latentsync_core.pipeline.stages import vae_generator
from latentsync_core.sampler import NoiseSource, frame_stride, plan_windows
from latentsync_core.unet.tiny import tiny_unet
from tests.tiny_models import unet, vae  # noqa: F401  (module fixtures)

R = 64


def _faces(n: int, fps, valid=None) -> AlignedFaces:
    from skimage import data

    img = torch.from_numpy(data.astronaut()[30:230, 140:340].copy()).permute(2, 0, 1).float()[None]
    base = torch.nn.functional.interpolate(img, size=(R, R), mode="area")[0]
    crops = torch.stack([torch.roll(base, shifts=i % 5, dims=2) for i in range(n)])
    crops = crops.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    valid = np.ones(n, bool) if valid is None else np.asarray(valid, bool)
    affines = np.tile(np.array([[1, 0, 0], [0, 1, 0]], np.float32), (n, 1, 1))
    affines[~valid] = np.nan
    info = FaceCropInfo(affines, np.zeros((n, 4), np.float32), valid, R, crop_size(R), (R, R))
    return AlignedFaces(crops, info, mouth_mask(R), "bowl", fps)


def _audio(n: int, fps, frames_with_audio=None) -> FrameAudio:
    positions = int(n * 50 / float(fps)) + 10
    features = torch.randn(positions, 5, 64, generator=torch.Generator().manual_seed(7))
    return FrameAudio(features, n, Fraction(fps), n / float(fps), n if frames_with_audio is None else frames_with_audio)


# --------------------------------------------------------------------------- planning
@pytest.mark.parametrize("fps,stride", [(25, 1), (Fraction(24000, 1001), 1), (30, 1), (37, 1), (38, 2), (50, 2),
                                        (Fraction(60000, 1001), 2), (60, 2), (100, 4), (120, 5)])
def test_auto_spacing_brings_window_neighbours_closest_to_25_fps(fps, stride):
    assert frame_stride(fps) == stride
    # Independently: of the strides 1..8, the chosen one spaces frames closest to 1/25 s (ties -> smaller),
    # except that spacing starts only above 37.5 fps.
    best = min(range(1, 9), key=lambda s: (abs(float(fps) / s - 25), s))
    assert stride == (best if float(fps) > 37.5 else 1)
    assert frame_stride(fps, "off") == 1 and frame_stride(fps, 3) == 3


def test_bad_spacing_is_named():
    with pytest.raises(ValueError, match="frame spacing"):
        frame_stride(60, "fast")
    with pytest.raises(ValueError, match="frame spacing"):
        frame_stride(60, 0)


def test_interleaved_windows_cover_every_active_frame_once_at_the_stride():
    active = [True] * 70
    active[40] = False
    windows = plan_windows(active, 16, 32, stride=2)
    # Block 1: active frames 0..31 dealt into evens and odds.
    assert windows[0] == list(range(0, 32, 2)) and windows[1] == list(range(1, 32, 2))
    flat = sorted(i for w in windows for i in w)
    assert flat == [i for i, a in enumerate(active) if a]  # every active frame exactly once
    for w in windows:
        assert len(w) <= 16
        gaps = np.diff(w)
        assert (gaps >= 2).all() and (gaps <= 3).all()  # neighbours 2 frames apart (3 across the gap at 40)
    assert plan_windows(active, 16, 32, stride=1) == plan_windows(active, 16, 32)


def test_active_frames_need_a_face_audio_and_no_silence():
    faces = _faces(6, 25, valid=[True, False, True, True, True, True])
    audio = _audio(6, 25, frames_with_audio=5)
    audio.silent = torch.tensor([False, False, True, False, False, False])
    assert active_frames(faces, audio, False).tolist() == [True, False, True, True, True, False]
    assert active_frames(faces, audio, True).tolist() == [True, False, False, True, True, False]


# --------------------------------------------------------------------------- running windows
def _by_hand(unet, vae, faces, audio, windows, options):
    """Each window through the three stage functions by hand, in order, with the engine's seeds."""
    keep = keep_mask_from_mouth(faces.mouth_mask)
    noise = NoiseSource(options.noise_mode, options.seed, (R // 8, R // 8))
    draws = vae_generator(options.seed)
    out = {}
    for number, window in enumerate(windows):
        cond = encode_faces(vae, faces.crops[window], keep, sample=options.sample_latents, generator=draws)
        chunks = torch.cat([audio.chunk_range(i, i + 1) for i in window])
        latents = sample_window(unet, cond, chunks, noise.for_window(number, window), options)
        out[tuple(window)] = face_image(decode_faces(vae, latents, cond))
    return out


def test_engine_sample_equals_the_stages_by_hand_and_keeps_inactive_frames(unet, vae):
    options = SamplerOptions(steps=2, guidance=1.5, seed=5, noise_mode="per-frame", window=4, deepcache_interval=0)
    faces, audio = _faces(11, 25, valid=[True] * 3 + [False] + [True] * 7), _audio(11, 25)
    engine = LipsyncEngine(unet, vae, resolution=R, sampler=options)
    active = active_frames(faces, audio, False)
    seen = []
    images, latents = engine.sample(faces, audio, active, on_window=lambda k, w: seen.append(w))
    assert seen == [[0, 1, 2, 4], [5, 6, 7, 8], [9, 10]]
    expected = _by_hand(unet, vae, faces, audio, seen, options)
    for window in seen:
        assert torch.equal(images[window], expected[tuple(window)])
    from latentsync_core.convert import uint8_to_image

    assert torch.equal(images[3], uint8_to_image(faces.crops[3:4])[0])  # no face: the crop, untouched
    assert torch.count_nonzero(latents[3]) == 0 and torch.count_nonzero(latents[0]) > 0


def test_batched_windows_give_the_frames_of_one_window_at_a_time(unet, vae):
    options = SamplerOptions(steps=3, guidance=1.5, seed=2, window=4, deepcache_interval=3)
    faces, audio = _faces(14, 25), _audio(14, 25)
    one, _ = LipsyncEngine(unet, vae, resolution=R, sampler=options, batch=1).sample(faces, audio)
    three, _ = LipsyncEngine(unet, vae, resolution=R, sampler=options, batch=3).sample(faces, audio)
    torch.testing.assert_close(three, one, atol=1e-5, rtol=0)
    from latentsync_core.convert import uint8_to_image

    assert (one - uint8_to_image(faces.crops)).abs().max() > 0.05  # the faces did change


class _OutOfMemoryAbove(torch.nn.Module):
    """The U-Net, but a call with more than `limit` samples (CFG doubles a window) runs 'out of memory'."""

    def __init__(self, unet, limit: int):
        super().__init__()
        self.unet, self.limit, self.calls = unet, limit, []

    def forward(self, sample, *args, **kwargs):
        self.calls.append(sample.shape[0])
        if sample.shape[0] > self.limit:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (injected)")
        return self.unet(sample, *args, **kwargs)


def test_out_of_memory_halves_the_batch_and_gives_the_same_frames(unet, vae, caplog):
    options = SamplerOptions(steps=2, guidance=1.5, seed=2, window=4, deepcache_interval=0)
    faces, audio = _faces(16, 25), _audio(16, 25)
    reference, _ = LipsyncEngine(unet, vae, resolution=R, sampler=options).sample(faces, audio)
    flaky = _OutOfMemoryAbove(unet, limit=4)  # two windows per call fit, four do not
    engine = LipsyncEngine(flaky, vae, resolution=R, sampler=options, batch=4)
    images, _ = engine.sample(faces, audio)
    torch.testing.assert_close(images, reference, atol=1e-5, rtol=0)
    assert engine.batch == 2 and flaky.calls[0] == 8 and set(flaky.calls[1:]) == {4}
    assert "out of GPU memory with 4 windows per U-Net call; retrying with 2" in caplog.text


def test_other_errors_are_not_mistaken_for_out_of_memory(unet, vae):
    class Broken(_OutOfMemoryAbove):
        def forward(self, sample, *args, **kwargs):
            raise RuntimeError("shape mismatch")

    engine = LipsyncEngine(Broken(unet, 0), vae, resolution=R, sampler=SamplerOptions(steps=1, window=4), batch=2)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        engine.sample(_faces(8, 25), _audio(8, 25))


def test_spaced_windows_at_50_fps_condition_each_frame_on_its_own_audio(unet, vae):
    options = SamplerOptions(steps=1, guidance=1.5, seed=2, deepcache_interval=0)
    faces, audio = _faces(40, 50), _audio(40, 50)
    engine = LipsyncEngine(unet, vae, resolution=R, sampler=options)
    seen = []
    images, _ = engine.sample(faces, audio, on_window=lambda k, w: seen.append(w))
    assert seen == [list(range(0, 32, 2)), list(range(1, 32, 2)), [32, 34, 36, 38], [33, 35, 37, 39]]
    expected = _by_hand(unet, vae, faces, audio, seen, options)
    for window in seen:
        assert torch.equal(images[window], expected[tuple(window)])
    off, _ = LipsyncEngine(unet, vae, resolution=R, sampler=options, frame_spacing="off").sample(faces, audio)
    assert not torch.equal(off, images)


def test_deepcache_3_is_the_default():
    assert SamplerOptions().deepcache_interval == 3


def test_mismatched_faces_and_audio_are_named(unet, vae):
    from latentsync_core.errors import InputMismatchError

    engine = LipsyncEngine(unet, vae, resolution=R, sampler=SamplerOptions(steps=1))
    with pytest.raises(InputMismatchError, match="30 fps.*25 fps"):
        engine.sample(_faces(4, 25), _audio(4, 30))
    with pytest.raises(InputMismatchError, match="covers 5 frames but face_data holds 4"):
        engine.sample(_faces(4, 25), _audio(5, 25))


def test_compile_and_channels_last_are_opt_in_on_cpu(vae):
    unet = tiny_unet(seed=4)
    plain = LipsyncEngine(unet, vae, resolution=R)
    assert plain.net is unet and plain.batch == 1  # CPU: batch auto -> 1, no channels-last, no compile
    assert LipsyncEngine(unet, vae, resolution=R, batch="auto").batch == 1
    compiled = LipsyncEngine(unet, vae, resolution=R, compile=True, channels_last=True)
    assert compiled.net is not unet and compiled.net._orig_mod is unet  # compiled lazily, on the first window
    assert unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    with pytest.raises(ValueError, match="batch"):
        LipsyncEngine(unet, vae, resolution=R, batch=0)
