"""Tiny U-Net behaviour: call contract, batch/frame bookkeeping, clip-wide GroupNorm, dtypes, checkpointing,
DeepCache."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from latentsync_core.errors import InputMismatchError, LatentSyncError
from latentsync_core.unet import DeepCacheState, LatentSyncUNet
from latentsync_core.unet.resnet import clip_group_norm
from latentsync_core.unet.tiny import TINY_CONFIG, randomize_, tiny_unet

AUDIO_LEN = 50


@pytest.fixture(scope="module")
def unet() -> LatentSyncUNet:
    return tiny_unet(seed=3)


def inputs(batch=2, frames=4, size=8, seed=0, width=64):
    gen = torch.Generator().manual_seed(seed)
    sample = torch.randn(batch, 13, frames, size, size, generator=gen)
    audio = torch.randn(batch * frames, AUDIO_LEN, width, generator=gen)
    return sample, audio


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.detach().float() - b.detach().float()).norm() / b.detach().float().norm())


@torch.no_grad()
def test_forward_shapes_and_audio_layouts(unet):
    sample, audio = inputs(batch=2, frames=5)
    out = unet(sample, 500, audio)
    assert out.shape == (2, 4, 5, 8, 8) and out.dtype == torch.float32 and torch.isfinite(out).all()
    assert torch.equal(unet(sample, 500, audio.view(2, 5, AUDIO_LEN, 64)), out)
    no_audio = unet(sample, 500, None)
    assert no_audio.shape == out.shape and rel(no_audio, out) > 1e-3  # audio actually conditions the output


@torch.no_grad()
def test_timestep_forms_agree(unet):
    sample, audio = inputs(batch=2)
    ref = unet(sample, 321, audio)
    for t in (torch.tensor(321), torch.tensor([321]), torch.tensor([321, 321]), 321.0):
        assert torch.allclose(unet(sample, t, audio), ref, atol=1e-6)
    assert rel(unet(sample, 20, audio), ref) > 1e-3


@torch.no_grad()
def test_each_batch_item_is_independent(unet):
    """Frames of one clip stay together: item i of a batch equals running it alone (with its own timestep and audio)."""
    sample, audio = inputs(batch=3, frames=4, seed=1)
    t = torch.tensor([900, 500, 100])
    out = unet(sample, t, audio)
    for i in range(3):
        alone = unet(sample[i:i + 1], int(t[i]), audio[i * 4:(i + 1) * 4])
        assert torch.allclose(out[i:i + 1], alone, atol=1e-5), i


@torch.no_grad()
def test_frames_interact_only_within_a_clip(unet):
    sample, audio = inputs(batch=2, frames=4, seed=2)
    base = unet(sample, 400, audio)
    changed = sample.clone()
    changed[0, :, 0] += 1.0
    out = unet(changed, 400, audio)
    assert (out[0, :, 1:] - base[0, :, 1:]).abs().max() > 1e-4  # motion modules / clip norms mix frames
    assert torch.allclose(out[1], base[1], atol=1e-6)  # the other clip is untouched


@torch.no_grad()
def test_odd_latent_sizes(unet):
    sample, audio = inputs(batch=1, frames=3)
    sample = torch.randn(1, 13, 3, 10, 6)
    assert unet(sample, 10, audio).shape == (1, 4, 3, 10, 6)


def test_bad_inputs(unet):
    sample, audio = inputs(batch=2, frames=4)
    with pytest.raises(InputMismatchError, match=r"\[batch, 13, frames"):
        unet(sample[:, :9], 1, audio)
    with pytest.raises(InputMismatchError, match="width 32"):
        unet(sample, 1, audio[..., :32])
    with pytest.raises(InputMismatchError, match="one embedding sequence per frame"):
        unet(sample, 1, audio[:5])
    with pytest.raises(InputMismatchError, match="timestep"):
        unet(sample, torch.tensor([1, 2, 3]), audio)
    long_sample, long_audio = inputs(batch=1, frames=25)
    with pytest.raises(InputMismatchError, match="24-frame"):
        unet(long_sample, 1, long_audio)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_clip_group_norm_matches_groupnorm_over_the_clip(dtype):
    """Reference: nn.GroupNorm on the official [B, C, F, H, W] layout, values and gradients."""
    torch.manual_seed(0)
    norm = torch.nn.GroupNorm(8, 32, eps=1e-5)
    with torch.no_grad():
        norm.weight.normal_(1, 0.2)
        norm.bias.normal_(0, 0.2)
    clip = (torch.randn(2, 32, 5, 6, 6) * 3 + torch.randn(2, 32, 5, 1, 1) * 4).requires_grad_()
    expected = norm(clip)
    grad = torch.randn_like(expected)
    expected.backward(grad)
    expected_grads = [clip.grad.clone(), norm.weight.grad.clone(), norm.bias.grad.clone()]
    for p in (clip, norm.weight, norm.bias):
        p.grad = None

    folded = clip.transpose(1, 2).reshape(10, 32, 6, 6)
    ours = clip_group_norm(norm.to(dtype), folded.to(dtype), frames=5)
    unfolded = ours.float().view(2, 5, 32, 6, 6).transpose(1, 2)
    tol = 1e-6 if dtype == torch.float32 else 1e-2
    assert rel(unfolded, expected) < tol
    if dtype == torch.float32:
        unfolded.backward(grad)
        for got, want in zip([clip.grad, norm.weight.grad, norm.bias.grad], expected_grads):
            assert rel(got, want) < 1e-5
    with torch.no_grad():  # the in-place inference path gives the same values as the autograd path
        inplace = clip_group_norm(norm, folded.detach().to(dtype).clone(), frames=5)
    assert torch.equal(inplace, ours.detach())


@pytest.mark.parametrize("dtype,tol", [(torch.bfloat16, 0.08), (torch.float16, 0.02)])
@torch.no_grad()
def test_low_precision_paths(unet, dtype, tol):
    sample, audio = inputs(batch=2, frames=3)
    ref = unet(sample, 700, audio)
    low = tiny_unet(seed=3).to(dtype)
    out = low(sample, 700, audio)  # float32 inputs are cast to the model's dtype
    assert out.dtype == dtype and low.dtype == dtype and torch.isfinite(out).all()
    assert rel(out, ref) < tol


def test_gradient_checkpointing_gives_equal_gradients():
    model = randomize_(LatentSyncUNet(TINY_CONFIG), seed=4)
    sample, audio = inputs(batch=1, frames=3, seed=5)
    target = torch.randn(1, 4, 3, 8, 8)

    def grads():
        model.zero_grad()
        F.mse_loss(model(sample, 250, audio), target).backward()
        return {n: p.grad.clone() for n, p in model.named_parameters()}

    plain = grads()
    calls = []
    hook = model.up_blocks[-1].resnets[0].register_forward_hook(lambda *_: calls.append(1))
    model.enable_gradient_checkpointing(True)
    assert model.gradient_checkpointing
    checkpointed = grads()
    hook.remove()
    assert len(calls) == 2  # the layer ran again during backward: checkpointing is really on
    assert plain.keys() == checkpointed.keys()
    for name in plain:
        assert torch.allclose(plain[name], checkpointed[name], rtol=1e-4, atol=1e-7), name
    assert any(g.abs().sum() > 0 for n, g in plain.items() if "motion_modules" in n)
    model.enable_gradient_checkpointing(False)
    assert not model.gradient_checkpointing


def _module_cache_reference(model: LatentSyncUNet):
    """Independent DeepCache reference (like DeepCacheSDHelper with cache_branch_id=0): on a cached step every
    module except conv_in, the time embedding, the last decoder layer and the output head returns its output
    from the last full step."""
    last = model.up_blocks[-1]
    cached_modules = [*model.down_blocks, model.mid_block, *model.up_blocks[:-1],
                      *last.resnets[:-1], *last.attentions[:-1], *last.motion_modules[:-1]]
    state = {"skip": False}
    outputs = {}
    for module in cached_modules:
        original = module.forward

        def wrapped(*args, _module=module, _original=original, **kwargs):
            if state["skip"]:
                if _module in model.up_blocks:  # a served decoder block still consumes its skip connections
                    del args[1][-len(_module.resnets):]
                return outputs[_module]
            outputs[_module] = _original(*args, **kwargs)
            return outputs[_module]
        module.forward = wrapped
    return state


@torch.no_grad()
def test_deep_cache_matches_module_level_caching():
    ours = tiny_unet(seed=6)
    reference = tiny_unet(seed=6)
    ref_state = _module_cache_reference(reference)
    _, audio = inputs(batch=2, frames=4)
    cache = DeepCacheState()
    for step, t in enumerate([999, 950, 900, 850, 800]):
        sample, _ = inputs(batch=2, frames=4, seed=10 + step)
        refresh = step % 3 == 0
        ref_state["skip"] = not refresh
        expected = reference(sample, t, audio)
        got = ours(sample, t, audio, deep_cache=cache, deep_cache_refresh=refresh)
        assert torch.allclose(got, expected, atol=1e-5), step
        if refresh:
            assert torch.equal(got, ours(sample, t, audio))  # refreshing does not change the full pass
        else:
            assert rel(got, ours(sample, t, audio)) > 1e-4  # the shallow path really is an approximation


@torch.no_grad()
def test_deep_cache_errors(unet):
    sample, audio = inputs(batch=2, frames=4)
    cache = DeepCacheState()
    with pytest.raises(LatentSyncError, match="no deep features are cached"):
        unet(sample, 10, audio, deep_cache=cache, deep_cache_refresh=False)
    unet(sample, 10, audio, deep_cache=cache, deep_cache_refresh=True)
    assert cache.features is not None
    other, other_audio = inputs(batch=2, frames=3)
    with pytest.raises(InputMismatchError, match="reset"):
        unet(other, 10, other_audio, deep_cache=cache, deep_cache_refresh=False)
    cache.reset()
    assert cache.features is None


@pytest.mark.parametrize("batch", [1, 2])
@torch.no_grad()
def test_channels_last_layout_gives_the_same_result(batch):
    model = tiny_unet(seed=7)
    sample, audio = inputs(batch=batch, frames=3)
    ref = model(sample, 123, audio)
    model.set_memory_format(torch.channels_last)
    assert model.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(model(sample, 123, audio), ref, atol=1e-5)


@torch.no_grad()
def test_inputs_and_cached_features_are_never_modified(unet):
    """The in-place inference ops must only ever write into tensors they just created."""
    sample, audio = inputs(batch=1, frames=3)
    sample_copy, audio_copy = sample.clone(), audio.clone()
    cache = DeepCacheState()
    first = unet(sample, 50, audio, deep_cache=cache, deep_cache_refresh=True)
    features = cache.features.clone()
    unet(sample, 40, audio, deep_cache=cache, deep_cache_refresh=False)
    assert torch.equal(sample, sample_copy) and torch.equal(audio, audio_copy)
    assert torch.equal(cache.features, features)
    assert torch.equal(unet(sample, 50, audio), first)
