"""Stage-2 trainer on the tiny fixtures: noise statistics, trainable selections, overfitting, checkpoints,
resume, stop, NaN and disk errors, loss terms and the CLI."""
from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from latentsync_core import host
from latentsync_core.data import DatasetError
from latentsync_core.errors import ProcessingInterrupted
from latentsync_core.train import (ClipDataset, LoRAAdapters, Stage2Trainer, TrainingError, TrainOptions, mixed_noise,
                                   plot_losses, trainable_names, train_stage2)
from tests.talking_clip import envelope_audio, mouth_envelope, talking_faces, one_torch_thread  # noqa: F401  (autouse fixture)

FAST = dict(num_frames=8, lr=1e-4, save_every=0, log_every=0, gradient_checkpointing=False)


def _write_clip(path, frames, seed):
    from latentsync_core.media.audio_file import AudioClip
    from latentsync_core.media.writer import write_video

    envelope = mouth_envelope(frames, seed)
    return write_video(path, talking_faces(envelope), 25, audio=AudioClip(envelope_audio(envelope, seed=seed)[None], 16000))


@pytest.fixture(scope="module")
def models(fixture_models):
    from latentsync_core.audio import load_whisper
    from latentsync_core.syncnet import load_syncnet
    from latentsync_core.vae import load_vae

    return {"root": fixture_models, "vae": load_vae(fixture_models / "vae" / "sd-vae-ft-mse"),
            "whisper": load_whisper(fixture_models / "whisper" / "tiny.pt", "cpu", torch.float32),
            "syncnet": load_syncnet(fixture_models / "latentsync" / "stable_syncnet.pt")}


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clips")
    _write_clip(folder / "a.mp4", 34, seed=4)
    _write_clip(folder / "too_short.mp4", 12, seed=5)  # < 2 x 8 frames
    return folder


def _unet(models):
    from latentsync_core.unet import load_unet

    return load_unet(models["root"] / "latentsync" / "latentsync_unet.pt")


# --------------------------------------------------------------------------- pure parts
def test_mixed_noise_has_the_stated_statistics():
    noise = mixed_noise((4000, 1, 4, 2, 2), alpha=1.0, generator=torch.Generator().manual_seed(0))
    flat = noise.permute(2, 0, 1, 3, 4).reshape(4, -1)  # frames x samples
    assert torch.allclose(flat.var(dim=1), torch.ones(4), atol=0.05)
    corr = torch.corrcoef(flat)
    off_diagonal = corr[~torch.eye(4, dtype=bool)]
    assert torch.allclose(off_diagonal, torch.full_like(off_diagonal, 0.5), atol=0.03)  # a^2 / (1 + a^2)
    strong = mixed_noise((4000, 1, 3, 2, 2), alpha=3.0, generator=torch.Generator().manual_seed(1))
    assert abs(torch.corrcoef(strong.permute(2, 0, 1, 3, 4).reshape(3, -1))[0, 1].item() - 0.9) < 0.03


def test_official_presets_select_the_published_parameter_counts():
    from latentsync_core.unet import DEFAULT_CONFIG, LatentSyncUNet

    with torch.device("meta"):
        unet = LatentSyncUNet(DEFAULT_CONFIG)
    sizes = {n: p.numel() for n, p in unet.named_parameters()}
    assert sum(sizes[n] for n in trainable_names(sizes, "stage2")) == 674_792_320
    assert 1.26e9 < sum(sizes.values()) < 1.28e9
    efficient = trainable_names(sizes, "stage2_efficient")
    assert efficient and all("attn2." in n or (n.startswith("up_blocks.") and "motion_modules." in n) for n in efficient)
    assert any(n.startswith("down_blocks.") and "attn2." in n for n in efficient)
    with pytest.raises(ValueError, match="unknown trainable preset"):
        trainable_names(sizes, "everything")


def test_loss_plot_draws_each_term():
    history = [{"step": i, "loss": 1.0 / i, "recon": 0.9 / i, "sync": 0.5} for i in range(1, 20)]
    image = plot_losses(history)
    assert image.shape == (360, 640, 3) and image.dtype == np.uint8
    colours = {tuple(c) for c in image.reshape(-1, 3)}
    assert (31, 119, 180) in colours and (214, 39, 40) in colours  # recon and sync lines


# --------------------------------------------------------------------------- training steps
@pytest.mark.parametrize("preset", ["stage2", "stage2_efficient"])
def test_one_step_changes_only_the_chosen_parameters(models, dataset_dir, preset):
    unet = _unet(models)
    before = {k: v.clone() for k, v in unet.state_dict().items()}
    dataset = ClipDataset(dataset_dir, models["whisper"], window=8)
    trainer = Stage2Trainer(unet, models["vae"], dataset, TrainOptions(preset=preset, **{**FAST, "lr": 1e-3}))
    trainer.step()
    chosen = set(trainable_names(before, preset))
    changed = {k for k, v in unet.state_dict().items() if not torch.equal(v, before[k])}
    assert changed <= chosen
    assert len(changed) > 0.5 * len(chosen)  # Adam moves every parameter that received a gradient
    assert dataset.skipped_short == 1


def test_lora_trains_adapters_and_saves_merged_official_weights(models, dataset_dir, tmp_path):
    from latentsync_core.unet import load_unet

    unet = _unet(models)
    before = {k: v.clone() for k, v in unet.state_dict().items()}
    dataset = ClipDataset(dataset_dir, models["whisper"], window=8)
    trainer = Stage2Trainer(unet, models["vae"], dataset, TrainOptions(preset="lora", lora_rank=4, **{**FAST, "lr": 1e-2}))
    assert isinstance(trainer.adapters, LoRAAdapters) and all(not p.requires_grad for p in unet.parameters())
    trainer.step()
    assert all(torch.equal(v, before[k]) for k, v in unet.state_dict().items())  # base untouched
    deltas = trainer.adapters.deltas()
    assert all(key in before for key in deltas) and max(d.abs().max().item() for d in deltas.values()) > 0
    path = trainer.save(tmp_path)
    reloaded = load_unet(path)
    for key, value in reloaded.state_dict().items():
        expected = before[key] + deltas[key] if key in deltas else before[key]
        assert torch.allclose(value, expected, atol=1e-6), key
    # The merged model computes what the adapted one does.
    x = torch.randn(1, 13, 8, 8, 8)
    audio = torch.randn(8, 50, 64)
    with torch.no_grad():
        adapted = unet(x, 500, audio)
        merged = reloaded(x, 500, audio)
    assert torch.allclose(adapted, merged, atol=1e-4)


def test_loss_decreases_when_overfitting_one_window(models, dataset_dir):
    torch.manual_seed(0)
    unet = _unet(models)
    dataset = ClipDataset(dataset_dir, models["whisper"], window=8)
    trainer = Stage2Trainer(unet, models["vae"], dataset, TrainOptions(**{**FAST, "lr": 3e-3, "seed": 3}))
    batch = trainer.next_batch()
    gen = torch.Generator().manual_seed(123)
    probes = [(mixed_noise(tuple(batch.gt_latents.shape), 1.0, gen), torch.tensor([t])) for t in (50, 300, 600, 900)]

    def probe_loss() -> float:
        with torch.no_grad():
            return float(np.mean([trainer.losses(batch, noise, t)["recon"].item() for noise, t in probes]))

    start = probe_loss()
    losses = [trainer.step(batch)["recon"] for _ in range(40)]
    end = probe_loss()
    assert end < 0.7 * start, (start, end)
    assert np.mean(losses[-10:]) < 0.8 * np.mean(losses[:10])


def test_checkpoints_reload_into_the_loader_and_resume(models, dataset_dir, tmp_path):
    from latentsync_core.unet import load_unet

    options = TrainOptions(steps=2, save_every=1, save_dir=tmp_path, **{k: v for k, v in FAST.items() if k != "save_every"})
    result = train_stage2(_unet(models), models["vae"], models["whisper"], dataset_dir, options)
    assert [p.name for p in result.checkpoints] == ["latentsync_stage2-step0000001.pt", "latentsync_stage2-step0000002.pt"]
    raw = torch.load(result.checkpoints[-1], weights_only=True)
    assert set(raw) == {"global_step", "state_dict"} and raw["global_step"] == 2
    reloaded = load_unet(result.checkpoints[-1])
    trained = result.unet.state_dict()
    assert all(torch.equal(v, trained[k]) for k, v in reloaded.state_dict().items())
    # Resume: the step count continues from the checkpoint and training starts from its exact weights.
    seen = {}

    def capture(record):
        seen.setdefault("first_step", record["step"])

    resumed_unet = load_unet(result.checkpoints[-1])
    dataset = ClipDataset(dataset_dir, models["whisper"], window=8)
    trainer = Stage2Trainer(resumed_unet, models["vae"], dataset, TrainOptions(resume=True, **FAST))
    assert trainer.global_step == 2
    assert all(torch.equal(v, trained[k]) for k, v in resumed_unet.state_dict().items())
    resumed = train_stage2(resumed_unet, models["vae"], models["whisper"], dataset,
                           TrainOptions(steps=1, resume=True, save_dir=tmp_path, **{k: v for k, v in FAST.items()}),
                           on_step=capture)
    assert seen["first_step"] == 3 and resumed.checkpoints[-1].name == "latentsync_stage2-step0000003.pt"


def test_sync_term_runs_and_missing_models_are_logged(models, dataset_dir, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="latentsync")
    options = TrainOptions(steps=1, save_dir=tmp_path, **{**FAST, "num_frames": 16})
    result = train_stage2(_unet(models), models["vae"], models["whisper"], dataset_dir, options, syncnet=models["syncnet"])
    assert result.terms == {"recon": True, "sync": True, "lpips": False, "trepa": False}
    record = result.history[0]
    assert 0 < record["sync"] < 20 and abs(record["loss"] - (record["recon"] + 0.05 * record["sync"])) < 1e-4
    text = caplog.text
    assert "lpips term off" in text and "trepa term off" in text


def test_nan_loss_stops_without_a_new_checkpoint(models, dataset_dir, tmp_path):
    unet = _unet(models)
    with torch.no_grad():
        unet.conv_in.bias[0] = float("nan")
    with pytest.raises(TrainingError, match="non-finite at step 1.*before updating the weights"):
        train_stage2(unet, models["vae"], models["whisper"], dataset_dir,
                     TrainOptions(steps=3, save_dir=tmp_path, **{**FAST, "save_every": 1}))
    assert list(tmp_path.iterdir()) == []


def test_stop_saves_a_checkpoint_first(models, dataset_dir, tmp_path):
    def stop_after_two(record):
        if record["step"] == 2:
            host.request_interrupt()

    try:
        with pytest.raises(ProcessingInterrupted):
            train_stage2(_unet(models), models["vae"], models["whisper"], dataset_dir,
                         TrainOptions(steps=5, save_dir=tmp_path, **FAST), on_step=stop_after_two)
    finally:
        host.clear_interrupt()
    (saved,) = tmp_path.iterdir()
    assert saved.name == "latentsync_stage2-step0000002-stopped.pt"
    assert torch.load(saved, weights_only=True)["global_step"] == 2


def test_full_disk_while_saving_leaves_no_file(models, dataset_dir, tmp_path, monkeypatch):
    dataset = ClipDataset(dataset_dir, models["whisper"], window=8)
    trainer = Stage2Trainer(_unet(models), models["vae"], dataset, TrainOptions(**FAST))

    def full_disk(obj, path, *args, **kwargs):
        with open(path, "wb") as out:
            out.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(TrainingError, match="No space left on device.*nothing was written"):
        trainer.save(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_bad_datasets_are_explained(models, tmp_path):
    only_short = tmp_path / "short"
    only_short.mkdir()
    _write_clip(only_short / "s.mp4", 12, seed=6)
    with pytest.raises(DatasetError, match="no clip .* has at least 16 frames"):
        ClipDataset(only_short, models["whisper"], window=8)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no manifest.jsonl and no videos"):
        ClipDataset(tmp_path / "empty", models["whisper"])
    with pytest.raises(TrainingError, match="unknown preset"):
        TrainOptions(preset="full").check()


def test_train_cli(models, dataset_dir, tmp_path, capsys):
    from latentsync_core.cli import main

    code = main(["train", "--data", str(dataset_dir), "--unet", str(models["root"] / "latentsync" / "latentsync_unet.pt"),
                 "--out", str(tmp_path), "--steps", "1", "--preset", "lora", "--num-frames", "8", "--no-sync"])
    assert code == 0
    assert (tmp_path / "latentsync_stage2-step0000001.pt").is_file()
    assert "step 1" in capsys.readouterr().out
