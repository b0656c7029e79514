"""Key names of the SD VAE in the original LDM single-file layout <-> diffusers' AutoencoderKL layout.

ComfyUI users keep `sd-vae-ft-mse` as one LDM-format file (`encoder.down.0.block.0.norm1.weight`...),
the official pipeline loads the diffusers folder (`encoder.down_blocks.0.resnets.0.norm1.weight`...).
Both hold the same tensors; only names differ, plus the mid-block attention, which LDM stores as
1x1 convolutions and diffusers as linear layers.
"""
from __future__ import annotations

import re

import torch

# Whole-name renames inside encoder/decoder that are not per-block.
_FIXED = {
    "norm_out": "conv_norm_out",
    "mid.block_1": "mid_block.resnets.0",
    "mid.block_2": "mid_block.resnets.1",
    "mid.attn_1.norm": "mid_block.attentions.0.group_norm",
    "mid.attn_1.q": "mid_block.attentions.0.to_q",
    "mid.attn_1.k": "mid_block.attentions.0.to_k",
    "mid.attn_1.v": "mid_block.attentions.0.to_v",
    "mid.attn_1.proj_out": "mid_block.attentions.0.to_out.0",
}
_ATTENTION_LINEARS = ("to_q", "to_k", "to_v", "to_out.0")
# diffusers < 0.14 attention names, still found in some copies of the diffusers-format file.
_DEPRECATED_ATTENTION = {"query": "to_q", "key": "to_k", "value": "to_v", "proj_attn": "to_out.0"}
LDM_PREFIXES = ("encoder.", "decoder.", "quant_conv.", "post_quant_conv.")


def _rename_block_part(part: str, ldm_to_diffusers: bool) -> str:
    pairs = (("block.", "resnets."), ("nin_shortcut", "conv_shortcut"), ("downsample.", "downsamplers.0."),
             ("upsample.", "upsamplers.0."))
    for ldm, diff in pairs:
        part = part.replace(ldm, diff) if ldm_to_diffusers else part.replace(diff, ldm)
    return part


def ldm_key_to_diffusers(key: str, num_up_blocks: int) -> str:
    """`decoder.up.3.block.0.conv1.weight` -> `decoder.up_blocks.0.resnets.0.conv1.weight` (LDM numbers up blocks from the bottom)."""
    side, _, rest = key.partition(".")
    if side not in ("encoder", "decoder"):
        return key
    for ldm, diff in _FIXED.items():
        if rest.startswith(ldm + "."):
            return f"{side}.{diff}{rest[len(ldm):]}"
    m = re.match(r"(down|up)\.(\d+)\.(.*)", rest)
    if m:
        kind, index, tail = m.group(1), int(m.group(2)), m.group(3)
        if kind == "up":
            index = num_up_blocks - 1 - index
        return f"{side}.{kind}_blocks.{index}.{_rename_block_part(tail, True)}"
    return key


def diffusers_key_to_ldm(key: str, num_up_blocks: int) -> str:
    side, _, rest = key.partition(".")
    if side not in ("encoder", "decoder"):
        return key
    for ldm, diff in _FIXED.items():
        if rest.startswith(diff + "."):
            return f"{side}.{ldm}{rest[len(diff):]}"
    m = re.match(r"(down|up)_blocks\.(\d+)\.(.*)", rest)
    if m:
        kind, index, tail = m.group(1), int(m.group(2)), m.group(3)
        if kind == "up":
            index = num_up_blocks - 1 - index
        return f"{side}.{kind}.{index}.{_rename_block_part(tail, False)}"
    return key


def _is_attention_linear(diffusers_key: str) -> bool:
    return ".mid_block.attentions.0." in diffusers_key and any(
        f".{name}.weight" in diffusers_key for name in _ATTENTION_LINEARS)


def is_ldm_layout(state_dict: dict[str, torch.Tensor]) -> bool:
    return any(k.startswith("encoder.down.") for k in state_dict)


def strip_container_prefix(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Keep only VAE tensors; a full SD checkpoint stores them under `first_stage_model.`."""
    prefix = "first_stage_model."
    if any(k.startswith(prefix) for k in state_dict):
        state_dict = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
    return {k: v for k, v in state_dict.items() if k.startswith(LDM_PREFIXES)}


def count_up_blocks(state_dict: dict[str, torch.Tensor]) -> int:
    pattern = re.compile(r"decoder\.(?:up|up_blocks)\.(\d+)\.")
    indices = {int(m.group(1)) for k in state_dict if (m := pattern.match(k))}
    return max(indices) + 1 if indices else 0


def ldm_to_diffusers(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    num_up = count_up_blocks(state_dict)
    out = {}
    for key, tensor in state_dict.items():
        new_key = ldm_key_to_diffusers(key, num_up)
        if _is_attention_linear(new_key) and tensor.ndim == 4:
            tensor = tensor[:, :, 0, 0]
        out[new_key] = tensor
    return out


def diffusers_to_ldm(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    num_up = count_up_blocks(state_dict)
    out = {}
    for key, tensor in state_dict.items():
        if _is_attention_linear(key) and tensor.ndim == 2:
            tensor = tensor[:, :, None, None]
        out[diffusers_key_to_ldm(key, num_up)] = tensor
    return out


def modernize_diffusers_keys(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename pre-0.14 diffusers attention keys (`query`, `proj_attn`) to today's (`to_q`, `to_out.0`)."""
    out = {}
    for key, tensor in state_dict.items():
        parts = key.split(".")
        if ".mid_block.attentions." in key and len(parts) >= 2 and parts[-2] in _DEPRECATED_ATTENTION:
            key = ".".join(parts[:-2] + [_DEPRECATED_ATTENTION[parts[-2]], parts[-1]])
        out[key] = tensor
    return out
