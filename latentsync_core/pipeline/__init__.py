"""The lip-sync pipeline: stage functions on explicit tensors (what the nodes wrap) and the streaming
`lipsync(video, audio, out_path, ...)` for files of any length (what the CLI runs)."""
from .models import LipsyncModels, load_models
from .run import LipsyncResult, lipsync
from .source import LOOP_MODES, TAIL_MODES, FrameSource, output_length, plan_runs, source_index
from .stages import (FaceLatents, SamplerOptions, decode_faces, encode_faces, faces_to_tensor, faces_to_uint8,
                     keep_mask_from_mouth, latent_mask, mask_to_tensor, sample_faces, sample_window, sync_faces)
from .streaming import LipsyncOptions, StreamStats, lipsync_frames


def run_cli(args, sample_media_dir):
    """Entry point of `python -m latentsync_core run` (imported lazily by latentsync_core.cli)."""
    from .cli import run_cli as _run_cli

    return _run_cli(args, sample_media_dir)


__all__ = [
    "LOOP_MODES", "TAIL_MODES", "FaceLatents", "FrameSource", "LipsyncModels", "LipsyncOptions", "LipsyncResult",
    "SamplerOptions", "StreamStats", "decode_faces", "encode_faces", "faces_to_tensor", "faces_to_uint8",
    "keep_mask_from_mouth", "latent_mask", "lipsync", "lipsync_frames", "load_models", "mask_to_tensor",
    "output_length", "plan_runs", "run_cli", "sample_faces", "sample_window", "source_index", "sync_faces",
]
