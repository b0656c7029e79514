"""Whisper features computed on demand, 30 s window group by window group, with a bounded cache.

`WhisperFeatureStore` stands in for the [T50, L+1, C] feature tensor (`shape`, `ndim`, `device`,
`index_select(0, positions)`, which is all `frame_audio_chunks` reads) without ever holding it: the
whole-clip tensor is ~1.4 GB per hour for Whisper tiny, while a window group is a few MB. The values
are `whisper_features`' bit for bit: the log-mel uses the whole clip's maximum (computed once, block by
block), and windows go through the encoder in the same groups `encode_mel` batches them in.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any

import numpy as np
import torch

from .. import host
from ..profile import stage
from .features import (CPU_WINDOWS_PER_BATCH, GPU_WINDOWS_PER_BATCH, _encoder_states, _fused_qkv, _validated_samples,
                       _window, window_spans)
from .mel import log_mel_max, mel_frame_count, normalise_log_mel, raw_log_mel
from .whisper_model import WINDOW_MEL_FRAMES, as_encoder, encoder_dims

CACHED_GROUPS = 2  # a window group holds 30 s x windows_per_batch of features


class WhisperFeatureStore:
    """Lazy `whisper_features(model, waveform_16k)`; the 16 kHz waveform is kept (64 kB per second)."""

    def __init__(self, model: Any, waveform_16k: np.ndarray | torch.Tensor, *, windows_per_batch: int | None = None,
                 cache_groups: int = CACHED_GROUPS):
        self.encoder = as_encoder(model)
        self.samples = _validated_samples(waveform_16k)
        dims = encoder_dims(self.encoder)
        self.n_mels = dims.n_mels
        self.spans = window_spans(mel_frame_count(self.samples.numel()))
        device = self.encoder.conv1.weight.device
        self.windows_per_batch = windows_per_batch or (GPU_WINDOWS_PER_BATCH if device.type != "cpu"
                                                       else CPU_WINDOWS_PER_BATCH)
        keeps = np.array([keep for _, keep in self.spans], np.int64)
        self.starts = np.concatenate([[0], np.cumsum(keeps)])  # first position of each window
        self.shape = torch.Size((int(self.starts[-1]), dims.n_audio_layer + 1, dims.n_audio_state))
        self.clip_max = log_mel_max(self.samples, self.n_mels)
        self.cache_groups = max(1, int(cache_groups))
        self._cache: OrderedDict[int, torch.Tensor] = OrderedDict()
        self.groups_computed = 0  # for tests and profiles: how often the encoder ran

    ndim = 3
    device = torch.device("cpu")
    dtype = torch.float32

    def __len__(self) -> int:
        return self.shape[0]

    @stage("whisper")
    def _group(self, group: int) -> torch.Tensor:
        """Features of the windows of one encoder batch, [positions of those windows, L+1, C] float32 CPU."""
        if group in self._cache:
            self._cache.move_to_end(group)
            return self._cache[group]
        first = group * self.windows_per_batch
        spans = self.spans[first:first + self.windows_per_batch]
        windows = []
        num_mel = mel_frame_count(self.samples.numel())
        for start, _keep in spans:
            stop = min(start + WINDOW_MEL_FRAMES, num_mel)
            mel = normalise_log_mel(raw_log_mel(self.samples, start, stop, self.n_mels), self.clip_max)
            windows.append(_window(mel, 0))
        weight = self.encoder.conv1.weight
        with torch.inference_mode():
            batch = torch.stack(windows).to(device=weight.device, dtype=weight.dtype)
            states = _encoder_states(self.encoder, batch, max(keep for _, keep in spans), _fused_qkv(self.encoder))
        out = torch.cat([states[i, :keep].to("cpu", torch.float32) for i, (_, keep) in enumerate(spans)])
        self.groups_computed += 1
        self._cache[group] = out
        while len(self._cache) > self.cache_groups:
            self._cache.popitem(last=False)
        return out

    def index_select(self, dim: int, index: torch.Tensor) -> torch.Tensor:
        """Rows `index` (positions) of the feature tensor, as `torch.index_select(features, 0, index)`."""
        if dim != 0:
            raise ValueError("WhisperFeatureStore selects positions (dim 0) only")
        positions = index.to("cpu", torch.long).numpy()
        out = torch.empty((len(positions),) + tuple(self.shape[1:]), dtype=torch.float32)
        windows = np.searchsorted(self.starts, positions, side="right") - 1
        groups = windows // self.windows_per_batch
        for group in np.unique(groups):
            host.check_interrupt()
            rows = np.flatnonzero(groups == group)
            group_start = self.starts[group * self.windows_per_batch]
            out[torch.from_numpy(rows)] = self._group(int(group))[torch.from_numpy(positions[rows] - group_start)]
        return out

    def materialize(self) -> torch.Tensor:
        """The whole tensor (what whisper_features returns), for callers that want it."""
        return self.index_select(0, torch.arange(self.shape[0]))
