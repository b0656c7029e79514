"""The denoising loop against a reference written from the DDIM formulas, DeepCache step scheduling,
CFG call counts, noise modes and seeds, window formation, schedulers and interrupts."""
from __future__ import annotations

import random

import pytest
import torch

from latentsync_core import host
from latentsync_core.errors import InputMismatchError, ProcessingInterrupted
from latentsync_core.sampler import (NoiseSource, WindowBuilder, deepcache_full_steps, denoise, make_scheduler,
                                     plan_windows)
from latentsync_core.unet.tiny import tiny_unet

F, H = 4, 8  # frames and latent side of the test windows (64 px faces)
# float64 throughout: the random tiny model amplifies float32 rounding (latents reach +-40), which would
# hide formula mistakes behind loose tolerances; in float64 equal formulas agree to ~1e-12.
DT = torch.float64


@pytest.fixture(scope="module")
def unet():
    return tiny_unet(seed=1).to(DT)


@pytest.fixture(scope="module")
def window():
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(1, 4, 1, H, H, generator=g).repeat(1, 1, F, 1, 1)
    mask = torch.ones(1, 1, F, H, H)
    mask[..., H // 2:, :] = 0
    masked = torch.randn(1, 4, F, H, H, generator=g) * 0.5 * mask
    ref = torch.randn(1, 4, F, H, H, generator=g) * 0.5
    audio = torch.randn(F, 50, 64, generator=g)
    return tuple(t.to(DT) for t in (noise, mask, masked, ref, audio))


class Recorder(torch.nn.Module):
    """Wraps a U-Net and records every call: batch size, timestep, whether it was a full pass."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.calls = []

    def forward(self, sample, t, audio, deep_cache=None, deep_cache_refresh=True):
        self.calls.append({"batch": sample.shape[0], "t": int(t), "full": deep_cache is None or deep_cache_refresh,
                           "audio": audio})
        if deep_cache is None:
            return self.inner(sample, t, audio)
        return self.inner(sample, t, audio, deep_cache=deep_cache, deep_cache_refresh=deep_cache_refresh)


def reference_ddim_cfg(unet, noise, mask, masked, ref, audio, steps, guidance):
    """DDIM (eta 0, leading spacing, steps_offset 1, set_alpha_to_one False) written out from the paper's update."""
    # The schedule and its square roots in float32 (the scheduler's own precision); the update itself
    # runs in the latents' dtype.
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float32) ** 2
    alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)
    stride = 1000 // steps
    timesteps = [i * stride + 1 for i in reversed(range(steps))]
    x = noise.clone()
    cond = torch.cat([mask, masked, ref], dim=1)
    with torch.no_grad():
        for t in timesteps:
            inp = torch.cat([x, cond], dim=1)
            eps_audio = unet(inp, t, audio.unsqueeze(0))
            eps_null = unet(inp, t, torch.zeros_like(audio).unsqueeze(0))
            eps = eps_null + guidance * (eps_audio - eps_null)
            a_t = alphas_cumprod[t]
            prev = t - stride
            a_prev = alphas_cumprod[prev] if prev >= 0 else alphas_cumprod[0]
            x0 = (x - (1 - a_t).sqrt() * eps) / a_t.sqrt()
            x = a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps
    return x, timesteps


def test_ddim_timesteps_are_the_official_ones():
    sched = make_scheduler("ddim", 20)
    assert sched.timesteps.tolist() == list(range(951, 0, -50))
    assert sched.init_noise_sigma == 1.0


def test_loop_without_deepcache_equals_reference_ddim_with_cfg(unet, window):
    steps, guidance = 10, 1.5
    expected, timesteps = reference_ddim_cfg(unet, *window, steps=steps, guidance=guidance)
    recorder = Recorder(unet)
    got = denoise(recorder, *window, steps=steps, guidance=guidance, deepcache_interval=0)
    assert [c["t"] for c in recorder.calls] == timesteps
    assert got.shape == (1, 4, F, H, H)
    torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-9)
    assert float((got - window[0]).abs().mean()) > 0.1  # it did move away from the noise


def test_deepcache_interval_3_runs_the_full_unet_7_of_20_steps_and_stays_close(unet, window):
    exact = denoise(unet, *window, steps=20, guidance=1.0)
    recorder = Recorder(unet)
    cached = denoise(recorder, *window, steps=20, guidance=1.0, deepcache_interval=3)
    full = [i for i, c in enumerate(recorder.calls) if c["full"]]
    assert full == [0, 3, 6, 9, 12, 15, 18] == deepcache_full_steps(20, 3)
    assert len(recorder.calls) == 20
    rel = float((cached - exact).norm() / exact.norm())
    # Stated tolerance on the tiny random model: the cached result stays within 15 % (relative L2)
    # of the exact one; it must differ, or the shallow path was not used.
    assert 0 < rel < 0.15, rel
    # The step counter restarts with every call (per window): a second run is identical.
    again = denoise(unet, *window, steps=20, guidance=1.0, deepcache_interval=3)
    assert torch.equal(again, cached)


def test_deepcache_off_values_mean_every_step_is_full():
    assert deepcache_full_steps(20, 0) == list(range(20))
    assert deepcache_full_steps(20, 1) == list(range(20))
    assert deepcache_full_steps(5, 3) == [0, 3]


class CountingUNet(torch.nn.Module):
    """A cheap linear stand-in: eps depends on the sample and on the audio mean (so CFG matters)."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.tensor(0.1))
        self.calls = []

    def forward(self, sample, t, audio, deep_cache=None, deep_cache_refresh=True):
        self.calls.append((sample.shape[0], audio))
        a = audio.reshape(sample.shape[0], -1).mean(dim=1).view(-1, 1, 1, 1, 1)
        return self.weight * sample[:, :4] + a


def test_cfg_1_makes_one_call_per_step_and_1_5_one_doubled_batch(window):
    model = CountingUNet()
    denoise(model, *window, steps=6, guidance=1.0)
    assert [b for b, _ in model.calls] == [1] * 6
    assert all(torch.equal(a, window[4].unsqueeze(0)) for _, a in model.calls)
    model.calls.clear()
    denoise(model, *window, steps=6, guidance=1.5)
    assert [b for b, _ in model.calls] == [2] * 6
    _, audio = model.calls[0]
    assert torch.count_nonzero(audio[0]) == 0 and torch.equal(audio[1], window[4])  # [null, audio]
    model.calls.clear()
    denoise(model, *window, steps=6, guidance=1.5, cfg_batch=False)
    assert [b for b, _ in model.calls] == [1] * 12


def test_cfg_as_two_calls_equals_cfg_as_one_doubled_batch(unet, window):
    a = denoise(unet, *window, steps=4, guidance=2.0)
    b = denoise(unet, *window, steps=4, guidance=2.0, cfg_batch=False)
    torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)
    c = denoise(unet, *window, steps=4, guidance=1.0)
    assert float((a - c).abs().max()) > 1e-3  # guidance changes the result


def test_same_inputs_same_output_bit_for_bit(unet, window):
    a = denoise(unet, *window, steps=3, guidance=1.5, deepcache_interval=2)
    b = denoise(unet, *window, steps=3, guidance=1.5, deepcache_interval=2)
    assert torch.equal(a, b)


@pytest.mark.parametrize("name", ["dpmpp_2m", "dpm++", "euler"])
def test_other_schedulers_run_and_differ_from_ddim(name, window):
    model = CountingUNet()
    ddim = denoise(model, *window, steps=8, guidance=1.0, scheduler="ddim")
    other = denoise(model, *window, steps=8, guidance=1.0, scheduler=name)
    assert torch.isfinite(other).all() and other.shape == ddim.shape
    assert not torch.allclose(other, ddim)
    assert len(model.calls) == 16


def test_unknown_scheduler_lists_the_choices(window):
    with pytest.raises(ValueError, match="ddim.*dpmpp_2m.*euler"):
        denoise(CountingUNet(), *window, steps=2, scheduler="heun")


def test_shape_mismatch_is_reported(window):
    noise, mask, masked, ref, audio = window
    with pytest.raises(InputMismatchError, match="mask"):
        denoise(CountingUNet(), noise, mask[:, :, :2], masked, ref, audio, steps=2)
    with pytest.raises(InputMismatchError, match="audio"):
        denoise(CountingUNet(), noise, mask, masked, ref, audio[:2], steps=2)


def test_interrupt_is_honoured_between_steps(window):
    model = CountingUNet()
    seen = []

    def on_step(done, total):
        seen.append((done, total))
        if done == 2:
            host.request_interrupt()

    with pytest.raises(ProcessingInterrupted):
        denoise(model, *window, steps=5, guidance=1.0, on_step=on_step)
    assert seen == [(1, 5), (2, 5)] and len(model.calls) == 2


# ---------------------------------------------------------------- noise
def test_shared_noise_is_one_draw_repeated_everywhere_and_seeded():
    a = NoiseSource("shared", 42, (H, H))
    w0, w1 = a.for_window(0, range(16)), a.for_window(1, range(16, 20))
    assert w0.shape == (1, 4, 16, H, H) and w1.shape == (1, 4, 4, H, H)
    assert torch.equal(w0[:, :, 0], w0[:, :, 15]) and torch.equal(w0[:, :, 0], w1[:, :, 3])
    expected = torch.randn(1, 4, 1, H, H, generator=torch.Generator().manual_seed(42))
    assert torch.equal(w0[:, :, :1], expected)
    assert torch.equal(NoiseSource("shared", 42, (H, H)).for_window(5, range(3)), w0[:, :, :3])
    assert not torch.equal(NoiseSource("shared", 43, (H, H)).for_window(0, range(1)), w0[:, :, :1])


def test_per_frame_noise_depends_on_the_frame_not_the_grouping():
    src = NoiseSource("per-frame", 7, (H, H))
    whole = src.for_window(0, [3, 4, 5, 6])
    split = torch.cat([src.for_window(0, [3, 4]), src.for_window(9, [5, 6])], dim=2)
    assert torch.equal(whole, split)
    assert not torch.equal(whole[:, :, 0], whole[:, :, 1])
    assert torch.equal(NoiseSource("per-frame", 7, (H, H)).for_window(0, [5]), whole[:, :, 2:3])


def test_per_window_noise_is_constant_within_and_different_across_windows():
    src = NoiseSource("per-window", 7, (H, H))
    a, b = src.for_window(0, range(4)), src.for_window(1, range(4, 8))
    assert torch.equal(a[:, :, 0], a[:, :, 3])
    assert not torch.equal(a[:, :, 0], b[:, :, 0])
    assert torch.equal(NoiseSource("per-window", 7, (H, H)).for_window(1, range(2)), b[:, :, :2])


def test_unknown_noise_mode_is_refused():
    with pytest.raises(ValueError, match="shared"):
        NoiseSource("random", 0, (H, H))


# ---------------------------------------------------------------- windows
@pytest.mark.parametrize("seed", range(5))
def test_windows_cover_every_active_frame_exactly_once(seed):
    rng = random.Random(seed)
    active = [rng.random() < 0.7 for _ in range(rng.randint(0, 120))]
    windows = plan_windows(active)
    flat = [i for w in windows for i in w]
    assert flat == [i for i, a in enumerate(active) if a]  # every active frame once, in order
    assert all(1 <= len(w) <= 16 for w in windows)
    assert all(len(w) == 16 for w in windows[:-1])


def test_windows_over_contiguous_faces_are_the_official_16_frame_slices():
    assert plan_windows([True] * 40) == [list(range(0, 16)), list(range(16, 32)), list(range(32, 40))]
    assert plan_windows([False] * 5) == []


def test_max_span_closes_windows_that_would_straddle_long_gaps():
    active = [True] * 4 + [False] * 50 + [True] * 20
    windows = plan_windows(active, 16, max_span=32)
    assert windows[0] == [0, 1, 2, 3]  # closed by the gap, not held open for 50 frames
    assert all(w[-1] - w[0] < 32 for w in windows)
    assert [i for w in windows for i in w] == [i for i, a in enumerate(active) if a]


def test_window_builder_validates_its_arguments():
    with pytest.raises(ValueError):
        WindowBuilder(size=0)
    with pytest.raises(ValueError):
        WindowBuilder(size=16, max_span=8)
