"""Whisper audio conditioning: load the encoder, extract features as the official does, cut per-frame chunks.

Stable entry points: `load_whisper(path, device, dtype)`, `whisper_features(model, waveform_16k)`,
`frame_audio_chunks(features, num_frames, fps)`. `audio_features_for_video` does the whole path for a
video (any AUDIO input -> 16 kHz mono copy -> features -> chunks, optional silent-frame marks).
"""
from .chunks import (chunk_centres, chunk_positions, frame_audio_chunks, frames_with_audio, official_chunk_count,
                     official_frame_count)
from .features import encode_mel, encoder_states, whisper_features, window_spans
from .mel import whisper_log_mel
from .prepare import model_waveform
from .silence import SilenceOptions, detect_silent_frames, frame_levels_db
from .video_audio import FrameAudio, audio_features_for_video
from .whisper_model import EncoderDims, build_encoder, encoder_dims, load_whisper

__all__ = [
    "EncoderDims", "FrameAudio", "SilenceOptions", "audio_features_for_video", "build_encoder", "chunk_centres",
    "chunk_positions", "detect_silent_frames", "encode_mel", "encoder_dims", "encoder_states", "frame_audio_chunks",
    "frame_levels_db", "frames_with_audio", "load_whisper", "model_waveform", "official_chunk_count", "official_frame_count",
    "whisper_features", "whisper_log_mel", "window_spans",
]
