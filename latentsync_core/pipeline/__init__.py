"""The lip-sync pipeline: stage functions on explicit tensors, the one `LipsyncEngine` that runs a video's
windows (what the nodes and the streaming runner feed), and `lipsync(video, audio, out_path, ...)` for
files of any length (what the CLI runs)."""
from .engine import LipsyncEngine, WindowRunner, active_frames, check_faces_audio, face_image
from .faces import AlignedFaces, crop_faces
from .models import LipsyncModels, load_models
from .options import LipsyncOptions
from .run import LipsyncResult, lipsync
from .source import LOOP_MODES, TAIL_MODES, FrameSource, output_length, plan_runs, source_index
from .stages import (FaceLatents, SamplerOptions, decode_faces, encode_faces, faces_to_tensor, faces_to_uint8,
                     keep_mask_from_mouth, latent_mask, mask_to_tensor, sample_window)
from .streaming import StreamStats, lipsync_frames, stream_frames


def run_cli(args, sample_media_dir):
    """Entry point of `python -m latentsync_core run` (imported lazily by latentsync_core.cli)."""
    from .cli import run_cli as _run_cli

    return _run_cli(args, sample_media_dir)


__all__ = [
    "LOOP_MODES", "TAIL_MODES", "AlignedFaces", "FaceLatents", "FrameSource", "LipsyncEngine", "LipsyncModels",
    "LipsyncOptions", "LipsyncResult", "SamplerOptions", "StreamStats", "WindowRunner", "active_frames",
    "check_faces_audio", "crop_faces", "decode_faces", "encode_faces", "face_image", "faces_to_tensor",
    "faces_to_uint8", "keep_mask_from_mouth", "latent_mask", "lipsync", "lipsync_frames", "load_models",
    "mask_to_tensor", "output_length", "plan_runs", "run_cli", "sample_window", "source_index", "stream_frames",
]
