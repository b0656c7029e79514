"""What stage 2 trains: the official module selections and a LoRA option.

* ``stage2`` (configs/unet/stage2.yaml): every parameter whose name contains ``motion_modules.`` or
  ``attentions.`` (674,792,320 of the official U-Net's 1.27 B).
* ``stage2_efficient`` (stage2_efficient.yaml): ``attn2.`` (the audio cross-attention) and the decoder's
  motion modules. The official efficient model has motion modules in the decoder only; loaded into a
  full U-Net, the encoder's stay frozen.
* ``lora``: low-rank adapters on the attention projections (q, k, v, out) of those same modules, base
  weights frozen. Adapters live outside the U-Net (forward hooks), so its state dict keeps the official
  keys; checkpoints hold the merged weights W + scale * B @ A.
"""
from __future__ import annotations

import math
from typing import Iterable

import torch
from torch import nn

PRESETS = ("stage2", "stage2_efficient", "lora")
STAGE2_MODULES = ("motion_modules.", "attentions.")
LORA_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")


def trainable_names(names: Iterable[str], preset: str) -> list[str]:
    names = list(names)
    if preset == "stage2":
        return [n for n in names if any(m in n for m in STAGE2_MODULES)]
    if preset == "stage2_efficient":
        return [n for n in names if "attn2." in n or (n.startswith("up_blocks.") and "motion_modules." in n)]
    raise ValueError(f"unknown trainable preset {preset!r}; choose one of {', '.join(PRESETS)}")


class LoRAAdapters(nn.Module):
    """Low-rank updates for chosen nn.Linear layers of a model, applied with forward hooks."""

    def __init__(self, model: nn.Module, rank: int = 16, alpha: float | None = None, seed: int = 0):
        super().__init__()
        if rank < 1:
            raise ValueError(f"LoRA rank must be at least 1, got {rank}")
        self.rank = int(rank)
        self.scale = float(alpha if alpha is not None else rank) / self.rank
        self.targets: dict[str, nn.Linear] = {}
        self.down = nn.ParameterDict()
        self.up = nn.ParameterDict()
        gen = torch.Generator().manual_seed(seed)
        for name, module in model.named_modules():
            if isinstance(module, nn.Linear) and name.endswith(LORA_TARGETS) and any(m in name for m in STAGE2_MODULES):
                key = name.replace(".", "__")
                self.targets[key] = module
                weight = module.weight
                # A random (Kaiming-uniform like nn.Linear), B zero: the adapted model starts equal to the base.
                bound = 1.0 / math.sqrt(weight.shape[1])
                down = (torch.rand(self.rank, weight.shape[1], generator=gen) * 2 - 1) * bound
                self.down[key] = nn.Parameter(down.to(weight.device, torch.float32))
                self.up[key] = nn.Parameter(torch.zeros(weight.shape[0], self.rank, device=weight.device))
        if not self.targets:
            raise ValueError("the model has no attention projections to adapt")
        self._handles = []

    def attach(self) -> "LoRAAdapters":
        self.detach()
        for key, module in self.targets.items():
            self._handles.append(module.register_forward_hook(self._hook(key)))
        return self

    def detach(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def _hook(self, key: str):
        def add_update(module: nn.Linear, inputs, output):
            x = inputs[0]
            update = (x.to(self.down[key].dtype) @ self.down[key].t()) @ self.up[key].t()
            return output + (self.scale * update).to(output.dtype)
        return add_update

    def deltas(self) -> dict[str, torch.Tensor]:
        """{weight key of the model: scale * B @ A} (float32, detached)."""
        return {key.replace("__", ".") + ".weight": (self.scale * self.up[key] @ self.down[key]).detach()
                for key in self.targets}

    def merged_state_dict(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """The model's state dict with every adapter merged into its weight (the model is left unchanged)."""
        state = {k: v.detach() for k, v in model.state_dict().items()}
        for key, delta in self.deltas().items():
            base = state[key]
            state[key] = (base.float() + delta.to(base.device)).to(base.dtype)
        return state


def select_trainable(unet: nn.Module, preset: str, lora_rank: int = 16, seed: int = 0
                     ) -> tuple[list[nn.Parameter], LoRAAdapters | None]:
    """Freeze the U-Net except the preset's parameters; returns (parameters to optimise, adapters or None)."""
    unet.requires_grad_(False)
    if preset == "lora":
        adapters = LoRAAdapters(unet, lora_rank, seed=seed).attach()
        return list(adapters.parameters()), adapters
    chosen = set(trainable_names((n for n, _ in unet.named_parameters()), preset))
    params = []
    for name, param in unet.named_parameters():
        if name in chosen:
            param.requires_grad_(True)
            params.append(param)
    if not params:
        raise ValueError(f"preset {preset!r} selects no parameter of this U-Net")
    return params, None
