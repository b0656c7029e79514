"""Stage-2 loss terms besides the noise MSE: differentiable VAE decoding, SyncNet, LPIPS and TREPA.

Weights (configs/unet/stage2.yaml): 1 x MSE(eps) + 0.05 x sync + 0.1 x LPIPS + 10 x TREPA.
LPIPS (VGG) needs the `lpips` package and torchvision's VGG16 weights; TREPA needs the official
VideoMAE-v2 ViT-g checkpoint (loaded by our own `videomae` module). Neither ships with this pack:
`load_lpips` / `load_trepa` return None (and the trainer logs that the term is off) when they are not
available, or raise a clear error when the user asked for them.
"""
from __future__ import annotations

import logging
from typing import Any, Callable

import torch
import torch.nn.functional as F

from ..errors import LatentSyncError
from ..syncnet.config import face_resolution, frames_per_window
from ..syncnet.losses import sync_bce_loss
from ..vae import SCALING_FACTOR, SHIFT_FACTOR

log = logging.getLogger("latentsync")

TREPA_SIZE = 224

# pixels pred [N, 3, R, R], target [N, 3, R, R] in [-1, 1] -> per-sample or scalar distance
PerceptualLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
# video [B, 3, F, 224, 224] in [0, 1] -> features [B, ...]
VideoFeatures = Callable[[torch.Tensor], torch.Tensor]


def decode_with_grad(vae: Any, latents: torch.Tensor) -> torch.Tensor:
    """Scaled latents [N, 4, h, w] -> pixels [N, 3, R, R] in [-1, 1], keeping the graph to the latents.

    (LatentVAE.decode runs without gradients: it serves inference.) The VAE's own weights stay frozen.
    """
    from ..vae import ComfyVAE, DiffusersVAE, as_latent_vae

    wrapped = as_latent_vae(vae)
    z = latents / SCALING_FACTOR + SHIFT_FACTOR
    if isinstance(wrapped, DiffusersVAE):
        return wrapped.model.decode(z.to(wrapped.dtype)).sample
    if isinstance(wrapped, ComfyVAE):
        model = wrapped.vae.first_stage_model
        param = next(model.parameters())
        if param.device != z.device:
            model.to(z.device)  # pixel losses need the decoder where the latents are
        return model.decode(z.to(param.dtype))
    raise TypeError(f"cannot decode with gradients through a {type(wrapped).__name__}")


def sync_loss(syncnet: Any, pixels: torch.Tensor, mel: torch.Tensor, frames: int) -> torch.Tensor:
    """BCE(cosine, 1) of the frozen SyncNet on predicted faces [B*F, 3, R, R] against mel [B, 1, 80, M].

    Faces are resized bicubically to the SyncNet's resolution when they differ (the official 512 -> 256)
    and only their lower halves are used, stacked frame-major into [B, 3F, R/2, R].
    """
    resolution = face_resolution(syncnet.config)
    if frames != frames_per_window(syncnet.config):
        raise ValueError(f"the SyncNet takes {frames_per_window(syncnet.config)}-frame windows, got {frames}")
    if pixels.shape[-1] != resolution:
        pixels = F.interpolate(pixels, size=(resolution, resolution), mode="bicubic", align_corners=False)
    halves = pixels[:, :, resolution // 2:, :]
    stacked = halves.reshape(-1, frames * 3, *halves.shape[-2:])
    vision, audio = syncnet(stacked.to(syncnet.dtype), mel.to(syncnet.device, syncnet.dtype))
    return sync_bce_loss(vision, audio, 1.0)


def lpips_loss(lpips_model: PerceptualLoss, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """LPIPS on the lower half of each predicted vs ground-truth frame (the mouth region)."""
    half = pred.shape[-2] // 2
    return lpips_model(pred[:, :, half:].float(), target[:, :, half:].float()).mean()


def trepa_loss(features: VideoFeatures, pred: torch.Tensor, target: torch.Tensor, frames: int) -> torch.Tensor:
    """MSE between L2-normalised features of 16-frame clips resized to 224 px in [0, 1]."""
    def clip(pixels: torch.Tensor) -> torch.Tensor:
        resized = F.interpolate(pixels.float(), size=(TREPA_SIZE, TREPA_SIZE), mode="bicubic", align_corners=False)
        video = resized.reshape(-1, frames, 3, TREPA_SIZE, TREPA_SIZE).transpose(1, 2)
        return (video / 2 + 0.5).clamp(0, 1)

    fake = F.normalize(features(clip(pred)).float(), p=2, dim=1)
    real = F.normalize(features(clip(target)).float(), p=2, dim=1)
    return F.mse_loss(fake, real)


def load_lpips(device: torch.device | str, required: bool = False) -> PerceptualLoss | None:
    """LPIPS (VGG) when the `lpips` package and its weights are usable here, else None (logged), or a
    clear error when ``required`` (the user asked for the term)."""
    def unavailable(reason: str) -> None:
        if required:
            raise LatentSyncError(f"LPIPS was asked for but {reason}. Install it with `pip install lpips` (it "
                                  "needs torchvision and downloads VGG16 weights once), or drop --lpips")
        log.info("LPIPS term off: %s", reason)

    try:
        import lpips  # noqa: F401  (optional; pulls torchvision)
    except ImportError:
        return unavailable("the `lpips` package is not installed (it needs torchvision's VGG16 weights)")
    try:
        model = lpips.LPIPS(net="vgg", verbose=False).to(device).eval().requires_grad_(False)
    except Exception as exc:  # noqa: BLE001  (a missing download surfaces as many error types)
        return unavailable(f"its VGG weights could not be loaded ({exc})")
    return model


TREPA_FILE = "vit_g_hybrid_pt_1200e_ssv2_ft.pth"


def find_trepa() -> Any:
    """The official TREPA checkpoint in the model folders (``latentsync/``, as the other auxiliary files)."""
    from .. import host

    return host.find_model("latentsync", TREPA_FILE)


def load_trepa(path: Any, device: torch.device | str, dtype: torch.dtype = torch.float32,
               required: bool = False) -> VideoFeatures | None:
    """The VideoMAE-v2 feature extractor for TREPA (`videomae.load_videomae`), or None (logged).

    ``path``: the checkpoint; None looks for ``vit_g_hybrid_pt_1200e_ssv2_ft.pth`` in the model folders.
    ``required``: the user asked for TREPA, so a missing file is an error instead of a log line.
    """
    from .videomae import load_videomae

    if path is None:
        path = find_trepa()
        if path is None:
            if required:
                raise LatentSyncError(f"TREPA was asked for but {TREPA_FILE} was not found in models/latentsync; "
                                      "download the official VideoMAE-v2 checkpoint there or pass its path")
            log.info("TREPA term off: no VideoMAE-v2 checkpoint (%s) in models/latentsync", TREPA_FILE)
            return None
    model = load_videomae(path, device, dtype)
    log.info("TREPA term on: VideoMAE-v2 from %s", path)

    def features(video: torch.Tensor) -> torch.Tensor:
        return model(video.to(dtype))

    return features
