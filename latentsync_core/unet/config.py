"""U-Net configuration: the official defaults, validation, and inference from a checkpoint's tensor shapes.

The config is a plain dict using the official field names (``configs/unet/*.yaml`` → ``model:``), so a
config printed here can be compared line by line with the published YAML files. Users never pick a
YAML: `infer_config` reads every shape-bearing choice from the weights. Choices that leave no trace in
tensor shapes (head counts, norm groups, eps, timestep-embedding flags) keep the official values.
"""
from __future__ import annotations

import copy
import re
from typing import Any, Mapping, Sequence

from ..errors import CheckpointError

CROSS_DOWN = "CrossAttnDownBlock3D"
PLAIN_DOWN = "DownBlock3D"
CROSS_UP = "CrossAttnUpBlock3D"
PLAIN_UP = "UpBlock3D"
MID_CROSS = "UNetMidBlock3DCrossAttn"

# The official stage-2 model (LatentSync 1.5 and 1.6 share it); stage-1 differs only in use_motion_module.
DEFAULT_CONFIG: dict[str, Any] = {
    "in_channels": 13,  # noisy latents 4 + mask 1 + masked-image latents 4 + reference latents 4
    "out_channels": 4,
    "block_out_channels": [320, 640, 1280, 1280],
    "down_block_types": [CROSS_DOWN, CROSS_DOWN, CROSS_DOWN, PLAIN_DOWN],
    "mid_block_type": MID_CROSS,
    "up_block_types": [PLAIN_UP, CROSS_UP, CROSS_UP, CROSS_UP],
    "layers_per_block": 2,
    "norm_num_groups": 32,
    "norm_eps": 1e-5,
    "act_fn": "silu",
    "attention_head_dim": 8,  # official name; it is the NUMBER of heads (head width = channels / 8)
    "cross_attention_dim": 384,  # Whisper tiny; 768 for Whisper small
    "add_audio_layer": True,
    "use_linear_projection": False,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "downsample_padding": 1,
    "mid_block_scale_factor": 1.0,
    "resnet_time_scale_shift": "default",
    "use_motion_module": True,
    "motion_module_resolutions": [1, 2, 4, 8],
    "motion_module_mid_block": False,
    "motion_module_decoder_only": False,
    "motion_module_type": "Vanilla",
    "motion_module_kwargs": {
        "num_attention_heads": 8,
        "num_transformer_block": 1,
        "attention_block_types": ["Temporal_Self", "Temporal_Self"],
        "temporal_position_encoding": True,
        "temporal_position_encoding_max_len": 24,
        "temporal_attention_dim_div": 1,
    },
}

# The official temporal transformer hard-codes 32 norm groups whatever norm_num_groups says.
MOTION_NORM_GROUPS = 32


def normalize_config(config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Fill defaults, turn scalars into per-block lists where needed, and reject unsupported variants."""
    cfg = copy.deepcopy(DEFAULT_CONFIG)
    if config:
        for key, value in config.items():
            if key == "motion_module_kwargs":
                cfg[key].update(copy.deepcopy(dict(value)))
            else:
                cfg[key] = copy.deepcopy(value)
    n = len(cfg["block_out_channels"])
    for key in ("down_block_types", "up_block_types"):
        cfg[key] = list(cfg[key])
        if len(cfg[key]) != n:
            raise ValueError(f"{key} has {len(cfg[key])} entries but block_out_channels has {n}")
    bad = [t for t in cfg["down_block_types"] if t not in (CROSS_DOWN, PLAIN_DOWN)]
    bad += [t for t in cfg["up_block_types"] if t not in (CROSS_UP, PLAIN_UP)]
    if bad:
        raise ValueError(f"unsupported block type(s) {bad}")
    if cfg["mid_block_type"] != MID_CROSS:
        raise ValueError(f"unsupported mid_block_type {cfg['mid_block_type']!r} (only {MID_CROSS})")
    if cfg["resnet_time_scale_shift"] != "default":
        raise ValueError("only resnet_time_scale_shift='default' is supported (as in every published config)")
    if cfg["act_fn"] not in ("silu", "swish"):
        raise ValueError(f"unsupported act_fn {cfg['act_fn']!r}")
    heads = cfg["attention_head_dim"]
    cfg["attention_head_dim"] = [heads] * n if isinstance(heads, int) else list(heads)
    cfg["block_out_channels"] = [int(c) for c in cfg["block_out_channels"]]
    cfg["motion_module_resolutions"] = [int(r) for r in cfg["motion_module_resolutions"]]
    cfg["motion_module_kwargs"]["attention_block_types"] = list(cfg["motion_module_kwargs"]["attention_block_types"])
    if cfg["use_motion_module"] and cfg["motion_module_type"] != "Vanilla":
        raise ValueError(f"unsupported motion_module_type {cfg['motion_module_type']!r} (only 'Vanilla')")
    if any(t != "Temporal_Self" for t in cfg["motion_module_kwargs"]["attention_block_types"]):
        raise ValueError("only 'Temporal_Self' motion attention blocks are supported (as in every published config)")
    _check_divisibility(cfg)
    return cfg


def _check_divisibility(cfg: Mapping[str, Any]) -> None:
    groups = cfg["norm_num_groups"]
    for i, channels in enumerate(cfg["block_out_channels"]):
        if channels % groups:
            raise ValueError(f"block_out_channels[{i}]={channels} is not divisible by norm_num_groups={groups}")
        if channels % cfg["attention_head_dim"][i]:
            raise ValueError(f"block_out_channels[{i}]={channels} is not divisible by "
                             f"{cfg['attention_head_dim'][i]} heads")
        if cfg["use_motion_module"] and channels % MOTION_NORM_GROUPS:
            raise ValueError(f"motion modules need channels divisible by {MOTION_NORM_GROUPS}; "
                             f"block {i} has {channels}")


def motion_flags(cfg: Mapping[str, Any]) -> tuple[list[bool], bool, list[bool]]:
    """Which down blocks, the mid block and which up blocks carry motion modules (official placement rule)."""
    n = len(cfg["block_out_channels"])
    use = bool(cfg["use_motion_module"])
    res = set(cfg["motion_module_resolutions"])
    down = [use and (2**i in res) and not cfg["motion_module_decoder_only"] for i in range(n)]
    # The official decoder computes the resolution as 2 ** (3 - i) whatever the depth; keep that rule.
    up = [use and (2 ** (3 - i) in res) for i in range(n)]
    mid = use and bool(cfg["motion_module_mid_block"])
    return down, mid, up


# --------------------------------------------------------------------------- inference from shapes
def _indices(keys: Sequence[str], prefix: str) -> list[int]:
    pattern = re.compile(rf"^{re.escape(prefix)}\.(\d+)\.")
    found = {int(m.group(1)) for k in keys if (m := pattern.match(k))}
    return sorted(found)


def _has_prefix(keys: Sequence[str], prefix: str) -> bool:
    return any(k.startswith(prefix) for k in keys)


REQUIRED_KEYS = ("conv_in.weight", "conv_out.weight", "time_embedding.linear_1.weight",
                 "down_blocks.0.resnets.0.conv1.weight", "mid_block.resnets.0.conv1.weight",
                 "up_blocks.0.resnets.0.conv1.weight", "conv_norm_out.weight")


def state_dict_shapes(state_dict: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in state_dict.items()}


def infer_config(shapes: Mapping[str, Sequence[int]], source: str = "state dict") -> dict[str, Any]:
    """Read the architecture from tensor names and shapes (a state dict's ``{key: shape}``).

    Raises CheckpointError naming `source` when the keys are not those of a LatentSync U-Net.
    """
    keys = list(shapes)
    missing = [k for k in REQUIRED_KEYS if k not in shapes]
    if missing:
        raise CheckpointError(
            f"{source} is not a LatentSync U-Net checkpoint: it lacks {missing[:3]} "
            f"(found keys like {sorted(keys)[:3]}). Expected the official latentsync_unet.pt "
            "(a {'state_dict': ...} with keys 'conv_in.weight', 'down_blocks.0.resnets.0...', ...)."
        )
    for marker, what in (("double_len_linear", "resnet_time_scale_shift='scale_shift'"),
                         ("class_embedding", "class embeddings")):
        if _has_prefix(keys, marker) or any(f".{marker}." in k for k in keys):
            raise CheckpointError(f"{source} uses {what}, which no published LatentSync model has; not supported")

    def shape(key: str) -> tuple[int, ...]:
        if key not in shapes:
            raise CheckpointError(f"{source} is an incomplete LatentSync U-Net: key {key!r} is missing")
        return tuple(shapes[key])

    cfg: dict[str, Any] = copy.deepcopy(DEFAULT_CONFIG)
    conv_in = shape("conv_in.weight")
    cfg["in_channels"] = conv_in[1]
    cfg["out_channels"] = shape("conv_out.weight")[0]
    down_ids = _indices(keys, "down_blocks")
    up_ids = _indices(keys, "up_blocks")
    if not down_ids or down_ids != list(range(len(down_ids))) or up_ids != down_ids:
        raise CheckpointError(f"{source}: down blocks {down_ids} and up blocks {up_ids} do not form a U-Net")
    n = len(down_ids)
    cfg["block_out_channels"] = [shape(f"down_blocks.{i}.resnets.0.conv1.weight")[0] for i in range(n)]
    if conv_in[0] != cfg["block_out_channels"][0]:
        raise CheckpointError(f"{source}: conv_in has {conv_in[0]} outputs but the first block has "
                              f"{cfg['block_out_channels'][0]} channels")
    if shape("time_embedding.linear_1.weight")[0] != 4 * cfg["block_out_channels"][0]:
        raise CheckpointError(f"{source}: the time embedding width is not 4x the first block width")
    cfg["layers_per_block"] = len(_indices(keys, "down_blocks.0.resnets"))
    for i in range(n):
        if len(_indices(keys, f"down_blocks.{i}.resnets")) != cfg["layers_per_block"]:
            raise CheckpointError(f"{source}: down block {i} has a different number of layers than block 0")
        if len(_indices(keys, f"up_blocks.{i}.resnets")) != cfg["layers_per_block"] + 1:
            raise CheckpointError(f"{source}: up block {i} should have {cfg['layers_per_block'] + 1} layers")
    cfg["down_block_types"] = [CROSS_DOWN if _has_prefix(keys, f"down_blocks.{i}.attentions.") else PLAIN_DOWN
                               for i in range(n)]
    cfg["up_block_types"] = [CROSS_UP if _has_prefix(keys, f"up_blocks.{i}.attentions.") else PLAIN_UP
                             for i in range(n)]
    if _indices(keys, "mid_block.attentions") != [0] or _indices(keys, "mid_block.resnets") != [0, 1]:
        raise CheckpointError(f"{source}: the mid block must hold one attention between two resnets")

    transformer_prefixes = [p.rsplit(".transformer_blocks.", 1)[0] for p in keys
                            if ".attentions." in p and ".transformer_blocks." in p]
    first_attn = min(transformer_prefixes, default="mid_block.attentions.0")
    for prefix in set(transformer_prefixes):
        if _indices(keys, f"{prefix}.transformer_blocks") != [0]:
            raise CheckpointError(f"{source}: {prefix} has more than one transformer block; not supported")
    cfg["use_linear_projection"] = len(shape(f"{first_attn}.proj_in.weight")) == 2
    attn2 = [k for k in keys if ".attn2.to_k.weight" in k]
    cfg["add_audio_layer"] = bool(attn2)
    if attn2:
        widths = {shapes[k][1] for k in attn2}
        if len(widths) != 1:
            raise CheckpointError(f"{source}: audio cross-attention widths differ between layers: {sorted(widths)}")
        cfg["cross_attention_dim"] = widths.pop()

    _infer_motion(cfg, keys, shape, n, source)
    try:
        return normalize_config(cfg)
    except ValueError as exc:
        raise CheckpointError(f"{source}: {exc}") from exc


def _infer_motion(cfg: dict[str, Any], keys: Sequence[str], shape, n: int, source: str) -> None:
    def has_mm(block: str) -> bool:
        return _has_prefix(keys, f"{block}.motion_modules.")

    down = [has_mm(f"down_blocks.{i}") for i in range(n)]
    up = [has_mm(f"up_blocks.{i}") for i in range(n)]
    mid = has_mm("mid_block")
    mm = cfg["motion_module_kwargs"]
    cfg["use_motion_module"] = any(down) or any(up) or mid
    if not cfg["use_motion_module"]:
        return
    cfg["motion_module_decoder_only"] = any(up) and not any(down)
    cfg["motion_module_mid_block"] = mid
    resolutions = {2**i for i in range(n) if down[i]} | {2 ** (3 - i) for i in range(n) if up[i]}
    cfg["motion_module_resolutions"] = sorted(resolutions)
    if motion_flags(cfg) != (down, mid, up):
        raise CheckpointError(f"{source}: motion modules sit at a placement no official config produces "
                              f"(down {down}, mid {mid}, up {up})")
    first = next(f"{b}.motion_modules.0.temporal_transformer" for b in
                 [*(f"down_blocks.{i}" for i in range(n)), "mid_block", *(f"up_blocks.{i}" for i in range(n))]
                 if has_mm(b))
    mm["num_transformer_block"] = len(_indices(keys, f"{first}.transformer_blocks"))
    n_attn = len(_indices(keys, f"{first}.transformer_blocks.0.attention_blocks"))
    mm["attention_block_types"] = ["Temporal_Self"] * n_attn
    inner, channels = shape(f"{first}.proj_in.weight")
    div = max(1, round(channels / inner))
    heads = mm["num_attention_heads"]
    if heads * (channels // heads // div) != inner:
        raise CheckpointError(f"{source}: motion-module width {inner} does not match "
                              f"{channels} channels / {heads} heads")
    mm["temporal_attention_dim_div"] = div
    pe_key = f"{first}.transformer_blocks.0.attention_blocks.0.pos_encoder.pe"
    mm["temporal_position_encoding"] = pe_key in keys
    if pe_key in keys:
        mm["temporal_position_encoding_max_len"] = shape(pe_key)[1]
    q_in = shape(f"{first}.transformer_blocks.0.attention_blocks.0.to_k.weight")[1]
    if q_in != inner:
        raise CheckpointError(f"{source}: motion modules with temporal cross-attention are not supported")
