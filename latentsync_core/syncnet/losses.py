"""The SyncNet objective: binary cross-entropy on the cosine similarity of the two embeddings.

Both embeddings come out of a ReLU and are unit-normalised, so their cosine lies in [0, 1] and can be
read as the probability that frames and audio are in sync (the official `cosine_loss`).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def sync_probability(vision: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
    """[B] cosine similarity in [0, 1] (clamped: rounding can step just outside)."""
    return F.cosine_similarity(vision.float(), audio.float(), dim=1).clamp(0.0, 1.0)


def sync_bce_loss(vision: torch.Tensor, audio: torch.Tensor, in_sync: torch.Tensor | float = 1.0) -> torch.Tensor:
    """Mean BCE(cosine, label); label 1 = in sync (the stage-2 sync loss), 0 = shifted (SyncNet training)."""
    prob = sync_probability(vision, audio)
    target = torch.as_tensor(in_sync, dtype=prob.dtype, device=prob.device).expand_as(prob)
    return F.binary_cross_entropy(prob, target)
